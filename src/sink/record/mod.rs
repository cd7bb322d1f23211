//! The `record` sink: lossless recording of streams to OME-Zarr 0.5 (Zarr v3).
//!
//! A [`Recording`] attaches one [`RecordTap`] to the subscriber hub of every recorded stream.
//! A tap copies each frame out of its pool slot (so camera and stage buffers are released at
//! once) into a recycled buffer and queues it for the writer thread ([`writer`]). The queue
//! is bounded by a memory budget in bytes (`recording.memory_budget_mib`), shared by the
//! streams of a recording. Nothing ever blocks the thread that publishes: when the budget is
//! exhausted the frame is not recorded, counted exactly, and a warning is logged (at most
//! every few seconds). Synthetic frames are never written into the `raw` array.

mod ome;
mod page_cache;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use serde::Deserialize;
use serde_json::json;

pub use ome::ome_attributes;
pub use writer::{FRAME_METADATA, META_CHUNK};

use crate::clock::WallClock;
use crate::frame::{Frame, Pixels};
use crate::sink::FrameSink;
use crate::sink::subscribers::SubscriberHub;
use writer::{Job, Msg, StreamWriter, WriterSettings, write_json_atomic};

/// Compression of recorded chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Raw little-endian pixels.
    #[default]
    None,
    /// zstd (lossless), level `recording.zstd_level`, with checksum.
    Zstd,
}

impl Compression {
    /// Name used in config and status.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Zstd => "zstd",
        }
    }
}

/// `[recording]`: where and how recordings are written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// Directory holding recordings (`<root>/<name>.zarr`); created when missing.
    pub root: PathBuf,
    /// Memory for frames waiting to be written, shared by the streams of a recording.
    pub memory_budget_mib: u64,
    /// `none` or `zstd`.
    pub compression: Compression,
    /// zstd level (-7..=22).
    pub zstd_level: i32,
    /// Frames per chunk along t.
    pub frames_per_chunk: u64,
    /// How often the written frames are made readable (array shapes stored), milliseconds.
    pub checkpoint_ms: u64,
    /// Pixel size in micrometres for the OME scale; unset = unknown (pixels).
    pub pixel_size_um: Option<f64>,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            root: "recordings".into(),
            memory_budget_mib: 512,
            compression: Compression::None,
            zstd_level: 3,
            frames_per_chunk: 1,
            checkpoint_ms: 250,
            pixel_size_um: None,
        }
    }
}

impl RecordingConfig {
    /// The first problem, as (key, message).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if !(1..=1 << 20).contains(&self.memory_budget_mib) {
            return Some((
                "memory_budget_mib",
                format!("must be 1..=1048576, got {}", self.memory_budget_mib),
            ));
        }
        if !(-7..=22).contains(&self.zstd_level) {
            return Some((
                "zstd_level",
                format!("must be -7..=22, got {}", self.zstd_level),
            ));
        }
        if !(1..=4096).contains(&self.frames_per_chunk) {
            return Some((
                "frames_per_chunk",
                format!("must be 1..=4096, got {}", self.frames_per_chunk),
            ));
        }
        if !(1..=60_000).contains(&self.checkpoint_ms) {
            return Some((
                "checkpoint_ms",
                format!("must be 1..=60000, got {}", self.checkpoint_ms),
            ));
        }
        if let Some(p) = self.pixel_size_um
            && !(p > 0.0 && p.is_finite())
        {
            return Some(("pixel_size_um", format!("must be > 0, got {p}")));
        }
        if self.root.as_os_str().is_empty() {
            return Some(("root", "must not be empty".into()));
        }
        None
    }
}

/// Why a recording could not start.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Bad recording name or stream list.
    #[error("{0}")]
    InvalidArgument(String),
    /// The recording's directory exists already.
    #[error("recording path {0} already exists; choose another name")]
    AlreadyExists(PathBuf),
    /// The directory cannot be created or written.
    #[error("cannot write the recording at {path}: {problem}")]
    NotWritable {
        /// Path that failed.
        path: PathBuf,
        /// Why.
        problem: String,
    },
}

/// A recording name: 1-128 of `A-Z a-z 0-9 . _ -`, not starting with `.` or `-`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > 128 {
        return Err(format!(
            "recording name must be 1-128 characters, got {} characters",
            name.len()
        ));
    }
    if !name.chars().all(ok_char) || name.starts_with(['.', '-']) {
        return Err(format!(
            "invalid recording name {name:?}: use letters, digits, '.', '_' and '-', not starting with '.' or '-'"
        ));
    }
    Ok(())
}

/// Counters of one recorded stream.
#[derive(Debug, Default)]
struct StreamCounters {
    /// Frames that reached the recording while it accepted frames.
    offered: AtomicU64,
    /// Frames readable in the store.
    committed: AtomicU64,
    /// Bytes of pixel data readable in the store.
    committed_bytes: AtomicU64,
    /// Frames refused because the memory budget was exhausted.
    over_budget: AtomicU64,
    /// Frames that did not fit the stream's array (another size or type).
    mismatched: AtomicU64,
    /// Synthetic frames kept out of the raw array.
    synthetic_skipped: AtomicU64,
}

/// State shared by the taps, the writer thread and status.
pub(crate) struct Shared {
    name: String,
    checkpoint: Duration,
    budget: u64,
    queued_bytes: AtomicU64,
    queued_frames: AtomicU64,
    accepting: AtomicBool,
    finished: AtomicBool,
    error: Mutex<Option<String>>,
    streams: Vec<StreamCounters>,
    tx: Sender<Msg>,
    free_tx: Sender<Pixels>,
    free_rx: Receiver<Pixels>,
    /// Last "not recorded" warning, ms since `started`.
    last_warn_ms: AtomicU64,
    started: Instant,
}

/// Frame buffers a recording keeps for reuse once written.
const FREE_BUFFERS: usize = 32;

/// Minimum time between two "frames not recorded" warnings.
const WARN_EVERY: Duration = Duration::from_secs(5);

impl Shared {
    /// Give the frame's budget back and recycle its buffer.
    fn release(&self, job: Job) {
        self.queued_bytes.fetch_sub(job.bytes, Ordering::AcqRel);
        self.queued_frames.fetch_sub(1, Ordering::Relaxed);
        let _ = self.free_tx.try_send(job.pixels);
    }

    fn publish_committed(&self, i: usize, w: &StreamWriter) {
        self.streams[i]
            .committed
            .store(w.committed(), Ordering::Relaxed);
        self.streams[i]
            .committed_bytes
            .store(w.committed_bytes(), Ordering::Relaxed);
    }

    /// The writer is done with the store: from now on every frame that reached the
    /// recording is either readable or not recorded.
    fn mark_finished(&self) {
        self.finished.store(true, Ordering::Release);
    }

    fn warn_not_recorded(&self, stream: &str, why: &str) {
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.last_warn_ms.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= WARN_EVERY.as_millis() as u64;
        if due
            && self
                .last_warn_ms
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let total: u64 = self
                .streams
                .iter()
                .map(|s| s.over_budget.load(Ordering::Relaxed))
                .sum();
            tracing::warn!(recording = %self.name, stream, total_not_recorded = total, "{why}");
        }
    }
}

/// Copy `src` into a recycled buffer when one of the right kind is at hand.
fn copy_pixels(src: &Pixels, recycled: Option<Pixels>) -> Pixels {
    match recycled {
        Some(mut d) => {
            if d.copy_from(src) {
                d
            } else {
                src.clone()
            }
        }
        None => src.clone(),
    }
}

/// One recorded stream's entry point: attached to the stream's subscriber hub.
pub struct RecordTap {
    stream: usize,
    name: String,
    raw: bool,
    shared: Arc<Shared>,
}

impl FrameSink for RecordTap {
    fn offer(&self, frame: &Frame) {
        let sh = &self.shared;
        if !sh.accepting.load(Ordering::Acquire) {
            return;
        }
        let counters = &sh.streams[self.stream];
        if self.raw && frame.meta().synthetic {
            counters.synthetic_skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        counters.offered.fetch_add(1, Ordering::Relaxed);
        let bytes = frame.spec().byte_len() as u64;
        let before = sh.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
        if before + bytes > sh.budget {
            sh.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            counters.over_budget.fetch_add(1, Ordering::Relaxed);
            sh.warn_not_recorded(
                &self.name,
                "recording memory budget exhausted (the disk is slower than the stream): frames not recorded",
            );
            return;
        }
        let pixels = copy_pixels(frame.pixels(), sh.free_rx.try_recv().ok());
        sh.queued_frames.fetch_add(1, Ordering::Relaxed);
        let job = Job {
            stream: self.stream,
            spec: frame.spec(),
            meta: *frame.meta(),
            pixels,
            bytes,
        };
        if sh.tx.send(Msg::Frame(job)).is_err() {
            // The writer is gone (it only exits after Finish): not recorded.
            sh.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            sh.queued_frames.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// State of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingState {
    /// Writing.
    Recording,
    /// Stopped cleanly; the store is complete.
    Stopped,
    /// Stopped by an error (e.g. disk full); the frames written stay readable.
    Failed,
}

impl RecordingState {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            RecordingState::Recording => "recording",
            RecordingState::Stopped => "stopped",
            RecordingState::Failed => "failed",
        }
    }
}

/// Numbers of one recorded stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecordStatus {
    /// Stream name.
    pub name: String,
    /// Frames readable in the store.
    pub frames_written: u64,
    /// Bytes of pixel data readable in the store (uncompressed).
    pub bytes_written: u64,
    /// Frames that reached the recording but are not (and will not be) in the store.
    pub frames_not_recorded: u64,
    /// Synthetic frames kept out of the raw array.
    pub frames_synthetic_skipped: u64,
}

/// Everything status reports about a recording.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingStatus {
    /// Name given by the client.
    pub name: String,
    /// Directory of the store.
    pub path: PathBuf,
    /// Recording, stopped or failed.
    pub state: RecordingState,
    /// Why it failed.
    pub error: Option<String>,
    /// Per stream.
    pub streams: Vec<StreamRecordStatus>,
    /// Bytes waiting to be written.
    pub queue_bytes: u64,
    /// Frames waiting to be written.
    pub queue_frames: u64,
    /// The memory budget of the queue, bytes.
    pub queue_budget_bytes: u64,
    /// Time since the recording started (to its end once stopped).
    pub elapsed: Duration,
    /// Compression of the chunks.
    pub compression: &'static str,
}

impl RecordingStatus {
    /// Frames readable in the store, all streams.
    pub fn frames_written(&self) -> u64 {
        self.streams.iter().map(|s| s.frames_written).sum()
    }

    /// Pixel bytes readable in the store, all streams.
    pub fn bytes_written(&self) -> u64 {
        self.streams.iter().map(|s| s.bytes_written).sum()
    }

    /// Frames not recorded, all streams.
    pub fn frames_not_recorded(&self) -> u64 {
        self.streams.iter().map(|s| s.frames_not_recorded).sum()
    }

    /// Mean write throughput (uncompressed pixel bytes per second).
    pub fn throughput_bytes_per_s(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.bytes_written() as f64 / s
        } else {
            0.0
        }
    }
}

/// A running (or finished) recording.
pub struct Recording {
    shared: Arc<Shared>,
    path: PathBuf,
    compression: Compression,
    stream_names: Vec<String>,
    taps: Mutex<Vec<(Arc<SubscriberHub>, u64)>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    stopped_after: Mutex<Option<Duration>>,
}

impl Recording {
    /// Create `<root>/<name>.zarr` and start recording `hubs` (one stream each).
    pub fn start(
        config: &RecordingConfig,
        name: &str,
        hubs: Vec<Arc<SubscriberHub>>,
        frame_interval: Option<Duration>,
    ) -> Result<Self, RecordError> {
        check_name(name).map_err(RecordError::InvalidArgument)?;
        if hubs.is_empty() {
            return Err(RecordError::InvalidArgument("no stream to record".into()));
        }
        let stream_names: Vec<String> = hubs.iter().map(|h| h.stage().to_string()).collect();
        for (i, n) in stream_names.iter().enumerate() {
            if stream_names[..i].contains(n) {
                return Err(RecordError::InvalidArgument(format!(
                    "stream {n:?} is listed twice"
                )));
            }
        }
        let root = &config.root;
        std::fs::create_dir_all(root).map_err(|e| RecordError::NotWritable {
            path: root.clone(),
            problem: e.to_string(),
        })?;
        let path = root.join(format!("{name}.zarr"));
        match std::fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(RecordError::AlreadyExists(path));
            }
            Err(e) => {
                return Err(RecordError::NotWritable {
                    path,
                    problem: e.to_string(),
                });
            }
        }
        let not_writable = |problem: String| RecordError::NotWritable {
            path: path.clone(),
            problem,
        };
        let clock = WallClock::now();
        let settings = WriterSettings {
            compression: config.compression,
            zstd_level: config.zstd_level,
            frames_per_chunk: config.frames_per_chunk,
            checkpoint: Duration::from_millis(config.checkpoint_ms),
            pixel_size_um: config.pixel_size_um,
            frame_interval,
        };
        write_root_group(&path, name, &stream_names, config, None).map_err(not_writable)?;
        let writers = stream_names
            .iter()
            .map(|s| StreamWriter::create(&path, s, &settings))
            .collect::<Result<Vec<_>, _>>()
            .map_err(not_writable)?;
        let (tx, rx) = unbounded();
        // Buffers kept for reuse: enough for bursts, so steady state allocates nothing.
        let (free_tx, free_rx) = bounded(FREE_BUFFERS);
        let shared = Arc::new(Shared {
            name: name.to_string(),
            checkpoint: settings.checkpoint,
            budget: config.memory_budget_mib << 20,
            queued_bytes: AtomicU64::new(0),
            queued_frames: AtomicU64::new(0),
            accepting: AtomicBool::new(true),
            finished: AtomicBool::new(false),
            error: Mutex::new(None),
            streams: stream_names
                .iter()
                .map(|_| StreamCounters::default())
                .collect(),
            tx,
            free_tx,
            free_rx,
            last_warn_ms: AtomicU64::new(0),
            started: Instant::now(),
        });
        let thread = {
            let shared = shared.clone();
            let thread_name = format!("record-{name}");
            std::thread::Builder::new()
                .name(thread_name.clone())
                .spawn(move || {
                    // Lossless recording is on the camera path: it must not yield to clients.
                    crate::thread_nice::raise_current_thread(
                        &thread_name,
                        crate::thread_nice::CAMERA_PATH_NICE,
                    );
                    writer::run(rx, shared, writers, clock)
                })
                .map_err(|e| not_writable(format!("cannot start the writer thread: {e}")))?
        };
        let taps = hubs
            .into_iter()
            .enumerate()
            .map(|(i, hub)| {
                let tap = Arc::new(RecordTap {
                    stream: i,
                    name: stream_names[i].clone(),
                    raw: stream_names[i] == crate::pipeline::RAW,
                    shared: shared.clone(),
                });
                let id = hub.attach(tap);
                (hub, id)
            })
            .collect();
        tracing::info!(recording = name, path = %path.display(), streams = ?stream_names, compression = config.compression.name(), "recording started");
        Ok(Self {
            shared,
            path,
            compression: config.compression,
            stream_names,
            taps: Mutex::new(taps),
            thread: Mutex::new(Some(thread)),
            stopped_after: Mutex::new(None),
        })
    }

    /// Name given by the client.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// True once the writer failed (the recording no longer accepts frames).
    pub fn failed(&self) -> bool {
        self.shared
            .error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// True once `stop` finalised the store.
    pub fn is_finalised(&self) -> bool {
        lock(&self.thread).is_none()
    }

    /// Detach from the streams, write everything queued, finalise the store; idempotent.
    pub fn stop(&self) -> RecordingStatus {
        for (hub, id) in lock(&self.taps).drain(..) {
            hub.detach(id);
        }
        self.shared.accepting.store(false, Ordering::Release);
        let thread = lock(&self.thread).take();
        if let Some(thread) = thread {
            let _ = self.shared.tx.send(Msg::Finish);
            if thread.join().is_err() {
                let mut error = self.shared.error.lock().unwrap_or_else(|e| e.into_inner());
                error.get_or_insert_with(|| "the writer thread panicked".into());
                self.shared.mark_finished();
            }
            *lock(&self.stopped_after) = Some(self.shared.started.elapsed());
            // The recycled frame buffers are not needed any more (the status outlives them).
            while self.shared.free_rx.try_recv().is_ok() {}
            let status = self.status();
            if let Err(e) = write_root_group(
                &self.path,
                &self.shared.name,
                &self.stream_names,
                &RecordingConfig {
                    compression: self.compression,
                    ..RecordingConfig::default()
                },
                Some(&status),
            ) {
                tracing::warn!(recording = %self.shared.name, error = %e, "cannot write the final recording summary");
            }
            tracing::info!(
                recording = %status.name,
                state = status.state.name(),
                frames_written = status.frames_written(),
                frames_not_recorded = status.frames_not_recorded(),
                mib_per_s = status.throughput_bytes_per_s() / (1 << 20) as f64,
                "recording stopped"
            );
        }
        self.status()
    }

    /// Current numbers.
    pub fn status(&self) -> RecordingStatus {
        let sh = &self.shared;
        let finished = sh.finished.load(Ordering::Acquire);
        let error = sh.error.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let state = match (&error, finished) {
            (Some(_), _) => RecordingState::Failed,
            (None, true) => RecordingState::Stopped,
            (None, false) => RecordingState::Recording,
        };
        let streams = self
            .stream_names
            .iter()
            .zip(&sh.streams)
            .map(|(name, c)| {
                let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
                // Once finished (or failed) every offered frame that is not readable is lost,
                // including any offered concurrently with the failure.
                let not_recorded = if finished {
                    load(&c.offered).saturating_sub(load(&c.committed))
                } else {
                    load(&c.over_budget) + load(&c.mismatched)
                };
                StreamRecordStatus {
                    name: name.clone(),
                    frames_written: load(&c.committed),
                    bytes_written: load(&c.committed_bytes),
                    frames_not_recorded: not_recorded,
                    frames_synthetic_skipped: load(&c.synthetic_skipped),
                }
            })
            .collect();
        RecordingStatus {
            name: sh.name.clone(),
            path: self.path.clone(),
            state,
            error,
            streams,
            queue_bytes: sh.queued_bytes.load(Ordering::Relaxed),
            queue_frames: sh.queued_frames.load(Ordering::Relaxed),
            queue_budget_bytes: sh.budget,
            elapsed: lock(&self.stopped_after).unwrap_or_else(|| sh.started.elapsed()),
            compression: self.compression.name(),
        }
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The recording's top-level group: what it is and, once finished, how it went.
fn write_root_group(
    path: &Path,
    name: &str,
    streams: &[String],
    config: &RecordingConfig,
    done: Option<&RecordingStatus>,
) -> Result<(), String> {
    let mut attrs = json!({
        "name": name,
        "writer": format!("scopepilot {}", env!("CARGO_PKG_VERSION")),
        "streams": streams,
        "compression": config.compression.name(),
        "complete": false,
    });
    if let Some(s) = done {
        attrs["complete"] = json!(true);
        attrs["state"] = json!(s.state.name());
        attrs["error"] = json!(s.error);
        attrs["frames_written"] = json!(s.frames_written());
        attrs["frames_not_recorded"] = json!(s.frames_not_recorded());
        attrs["duration_s"] = json!(s.elapsed.as_secs_f64());
    }
    write_json_atomic(
        &path.join("zarr.json"),
        &ome::group_document(json!({ "scopepilot": attrs })),
    )
}

#[cfg(test)]
mod tests;
