//! The recording writer: one thread that appends frames to one Zarr v3 array per stream and
//! keeps the store readable at all times.
//!
//! Layout of a recording `<root>/<name>.zarr` (a Zarr v3 group):
//!
//! ```text
//! <name>.zarr/zarr.json            group; attributes.scopepilot: recording, streams, counters
//! <name>.zarr/<stream>/zarr.json   OME-Zarr 0.5 image group (attributes.ome)
//! <name>.zarr/<stream>/0           [t, y, x] pixels (u8 / u16 / f32), chunks [frames_per_chunk, y, x]
//! <name>.zarr/<stream>/frame_number, camera_timestamp_ns, arrival_unix_ns, exposure_us, synthetic
//!                                  per-frame metadata, 1-D, one value per t
//! ```
//!
//! Crash safety: chunks are written first; the arrays' shapes (the `zarr.json` files) grow
//! only at checkpoints, after the chunks they expose are stored, and each `zarr.json` is
//! replaced atomically (write to a temporary file, then rename). A crash (or a full disk)
//! therefore leaves a store whose arrays expose exactly the frames of the last checkpoint,
//! all of them complete.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::clock::WallClock;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde_json::json;
use zarrs::array::{Array, ArrayBuilder, ArrayMetadataOptions, data_type};
use zarrs::filesystem::FilesystemStore;
use zarrs::metadata::FillValueMetadata;

use super::ome::{IMAGE_DATASET, group_document, ome_attributes};
use super::page_cache::WrittenChunks;
use super::{Compression, Shared};
use crate::frame::{FrameMeta, FrameSpec, PixelType, Pixels};

/// Values per chunk of the per-frame metadata arrays.
pub const META_CHUNK: u64 = 1024;

/// Names of the per-frame metadata arrays, in the order they are written.
pub const FRAME_METADATA: [&str; 5] = [
    "frame_number",
    "camera_timestamp_ns",
    "arrival_unix_ns",
    "exposure_us",
    "synthetic",
];

/// One frame copied out of the pipeline, waiting to be written.
pub(super) struct Job {
    pub stream: usize,
    pub spec: FrameSpec,
    pub meta: FrameMeta,
    pub pixels: Pixels,
    pub bytes: u64,
}

/// What the writer thread receives.
pub(super) enum Msg {
    Frame(Job),
    /// Write everything, finalise the metadata and exit.
    Finish,
}

/// Settings of the writer.
#[derive(Debug, Clone)]
pub(super) struct WriterSettings {
    pub compression: Compression,
    pub zstd_level: i32,
    pub frames_per_chunk: u64,
    pub checkpoint: Duration,
    pub pixel_size_um: Option<f64>,
    /// Nominal frame interval (paced sources); `None` = measured from the camera timestamps.
    pub frame_interval: Option<Duration>,
}

/// Write `bytes` to `path` atomically: a temporary file renamed over the old one.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = stage_file(path, bytes)?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Write `bytes` next to `path` in a temporary file, for a later rename over `path`.
fn stage_file(path: &Path, bytes: &[u8]) -> Result<PathBuf, String> {
    let what = |e: &dyn std::fmt::Display| format!("cannot write {}: {e}", path.display());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| what(&e))?;
    }
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    std::fs::write(&tmp, bytes).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        what(&e)
    })?;
    Ok(tmp)
}

/// Write the JSON `doc` to `path` atomically.
pub(super) fn write_json_atomic(path: &Path, doc: &impl serde::Serialize) -> Result<(), String> {
    let bytes = serde_json::to_vec_pretty(doc)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    write_atomic(path, &bytes)
}

type ZArray = Array<FilesystemStore>;

fn node_dir(root: &Path, node: &str) -> PathBuf {
    root.join(node.trim_start_matches('/'))
}

fn metadata_path(root: &Path, array: &ZArray) -> PathBuf {
    node_dir(root, array.path().as_str()).join("zarr.json")
}

fn metadata_bytes(array: &ZArray) -> Result<Vec<u8>, String> {
    serde_json::to_vec_pretty(&array.metadata_opt(&ArrayMetadataOptions::default()))
        .map_err(|e| format!("cannot encode the metadata of {}: {e}", array.path()))
}

/// Store the array's metadata atomically (not through the store, whose writes are in place).
fn store_array_metadata(root: &Path, array: &ZArray) -> Result<(), String> {
    write_atomic(&metadata_path(root, array), &metadata_bytes(array)?)
}

/// Replace the metadata of several arrays together: every new `zarr.json` is written to a
/// temporary file first and only then renamed into place, so a full disk changes none.
fn store_metadata_together<'a>(
    root: &Path,
    arrays: impl IntoIterator<Item = &'a ZArray>,
) -> Result<(), String> {
    let mut staged = Vec::new();
    let mut result = Ok(());
    for a in arrays {
        let path = metadata_path(root, a);
        match metadata_bytes(a).and_then(|b| stage_file(&path, &b)) {
            Ok(tmp) => staged.push((tmp, path)),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if result.is_err() {
        for (tmp, _) in &staged {
            let _ = std::fs::remove_file(tmp);
        }
        return result;
    }
    for (tmp, path) in staged {
        std::fs::rename(&tmp, &path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// The per-frame metadata not yet in a full, stored chunk (at most a few chunks' worth: full
/// chunks are dropped from memory once stored, so a long recording does not grow).
#[derive(Default)]
struct Columns {
    /// Index (frame) of the first value held.
    base: usize,
    /// Camera timestamp of frame 0, for the mean frame interval.
    first_timestamp_ns: Option<u64>,
    frame_number: Vec<u64>,
    camera_timestamp_ns: Vec<u64>,
    arrival_unix_ns: Vec<u64>,
    exposure_us: Vec<u32>,
    synthetic: Vec<bool>,
}

impl Columns {
    fn push(&mut self, meta: &FrameMeta, clock: &WallClock) {
        self.first_timestamp_ns
            .get_or_insert(meta.camera_timestamp_ns);
        self.frame_number.push(meta.frame_number);
        self.camera_timestamp_ns.push(meta.camera_timestamp_ns);
        self.arrival_unix_ns.push(clock.unix_ns(meta.arrival));
        self.exposure_us.push(meta.exposure_us);
        self.synthetic.push(meta.synthetic);
    }

    /// Keep the values of the first `n` frames.
    fn truncate(&mut self, n: usize) {
        let held = n.saturating_sub(self.base);
        self.frame_number.truncate(held);
        self.camera_timestamp_ns.truncate(held);
        self.arrival_unix_ns.truncate(held);
        self.exposure_us.truncate(held);
        self.synthetic.truncate(held);
    }

    /// Forget the values of the frames before `n` (stored for good).
    fn forget_before(&mut self, n: usize) {
        let k = n.saturating_sub(self.base).min(self.frame_number.len());
        self.frame_number.drain(..k);
        self.camera_timestamp_ns.drain(..k);
        self.arrival_unix_ns.drain(..k);
        self.exposure_us.drain(..k);
        self.synthetic.drain(..k);
        self.base += k;
    }

    /// Mean interval between camera timestamps of the first `n` frames (at least two).
    fn mean_interval_s(&self, n: usize) -> Option<f64> {
        let last = n.checked_sub(1 + self.base)?;
        match (self.first_timestamp_ns, self.camera_timestamp_ns.get(last)) {
            (Some(a), Some(&b)) if n >= 2 && b > a => Some((b - a) as f64 / 1e9 / (n - 1) as f64),
            _ => None,
        }
    }
}

/// A value of a per-frame metadata column, as stored (uncompressed, little-endian).
trait ColumnValue: Copy + Default {
    fn put(self, out: &mut Vec<u8>);
}

impl ColumnValue for u64 {
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl ColumnValue for u32 {
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl ColumnValue for bool {
    fn put(self, out: &mut Vec<u8>) {
        out.push(self as u8);
    }
}

/// Store chunks `from_chunk..` of a 1-D column of `n` values, of which `values` holds those
/// from index `base` on (the last chunk padded with the fill value). The columns have no compression, so a chunk is the
/// values' little-endian bytes (the `bytes` codec); each chunk file is replaced atomically
/// because the last one is rewritten while it fills and already holds committed values.
fn store_column<T: ColumnValue>(
    root: &Path,
    array: &ZArray,
    values: &[T],
    base: usize,
    n: u64,
    from_chunk: u64,
) -> Result<(), String> {
    let dir = node_dir(root, array.path().as_str()).join("c");
    let mut bytes = Vec::new();
    for c in from_chunk..n.div_ceil(META_CHUNK) {
        let start = (c * META_CHUNK) as usize;
        let end = ((c + 1) * META_CHUNK).min(n) as usize;
        bytes.clear();
        for i in start..start + META_CHUNK as usize {
            values
                .get(i.wrapping_sub(base))
                .filter(|_| i < end && i >= base)
                .copied()
                .unwrap_or_default()
                .put(&mut bytes);
        }
        write_atomic(&dir.join(c.to_string()), &bytes)?;
    }
    Ok(())
}

/// The pixel array of one stream and the chunk being filled.
struct Image {
    array: ZArray,
    store: Arc<FilesystemStore>,
    /// Chunks go through a compression codec.
    compressed: bool,
    spec: FrameSpec,
    /// `frames_per_chunk` frames of pixels.
    buf: Pixels,
    /// Frames in `buf` not yet part of a stored chunk of their own.
    in_buf: u64,
    /// Index of the chunk `buf` belongs to.
    chunk: u64,
    /// Chunk files on their way out of the page cache.
    written: WrittenChunks,
}

impl Image {
    /// Store `pixels` (one whole chunk) as the chunk being filled.
    ///
    /// Uncompressed chunks are the pixels' little-endian bytes (the array's only codec is
    /// `bytes`), so on a little-endian machine they are written straight from the frame buffer
    /// to the chunk file named by the array's chunk key: no encoding copy, no scan for
    /// fill values, the speed of the disk. Compressed chunks go through the zarrs codec chain.
    /// Either way the chunk file then leaves the page cache a few chunks later.
    fn store(&mut self, pixels: &Pixels) -> Result<(), String> {
        let path = self
            .store
            .key_to_fspath(&self.array.chunk_key(&[self.chunk, 0, 0]));
        self.write_chunk(pixels, &path)?;
        self.written.written(path);
        Ok(())
    }

    fn write_chunk(&self, pixels: &Pixels, path: &Path) -> Result<(), String> {
        let idx = [self.chunk, 0, 0];
        let what = |e: &dyn std::fmt::Display| {
            format!(
                "cannot write chunk {} of {}: {e}",
                self.chunk,
                self.array.path()
            )
        };
        if cfg!(target_endian = "little") && !self.compressed {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| what(&e))?;
            }
            let bytes: &[u8] = match pixels {
                Pixels::U8(v) => v,
                Pixels::U16(v) => bytemuck::cast_slice(v),
                Pixels::F32(v) => bytemuck::cast_slice(v),
            };
            return std::fs::write(path, bytes).map_err(|e| what(&e));
        }
        match pixels {
            Pixels::U8(v) => self.array.store_chunk(&idx, v.as_slice()),
            Pixels::U16(v) => self.array.store_chunk(&idx, v.as_slice()),
            Pixels::F32(v) => self.array.store_chunk(&idx, v.as_slice()),
        }
        .map_err(|e| what(&e))
    }
}

/// Why a frame was not written.
pub(super) enum PushError {
    /// This frame cannot go into this stream (e.g. a different size); the recording goes on.
    Frame(String),
    /// The store cannot be written any more (disk full, I/O error): the recording stops.
    Fatal(String),
}

/// Writer of one recorded stream.
pub(super) struct StreamWriter {
    root: PathBuf,
    name: String,
    settings: WriterSettings,
    image: Option<Image>,
    columns: Columns,
    meta_arrays: Vec<ZArray>,
    /// Full metadata chunks already stored (never rewritten).
    meta_chunks_done: u64,
    /// Frames accepted into chunk buffers.
    received: u64,
    /// Frames in stored chunks.
    stored: u64,
    /// Frames exposed by the stored array shapes (readable).
    committed: u64,
}

impl StreamWriter {
    /// Write the stream's OME image group; the arrays follow with the first frame.
    pub fn create(root: &Path, name: &str, settings: &WriterSettings) -> Result<Self, String> {
        let w = Self {
            root: root.to_path_buf(),
            name: name.to_string(),
            settings: settings.clone(),
            image: None,
            columns: Columns::default(),
            meta_arrays: Vec::new(),
            meta_chunks_done: 0,
            received: 0,
            stored: 0,
            committed: 0,
        };
        w.store_group(w.settings.frame_interval.map(|d| d.as_secs_f64()), false)?;
        Ok(w)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Frames readable in the store.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// Bytes of pixel data readable in the store (uncompressed).
    pub fn committed_bytes(&self) -> u64 {
        self.image
            .as_ref()
            .map_or(0, |i| i.spec.byte_len() as u64 * self.committed)
    }

    fn store_group(&self, frame_interval_s: Option<f64>, complete: bool) -> Result<(), String> {
        let attrs = json!({
            "ome": ome_attributes(&self.name, frame_interval_s, self.settings.pixel_size_um),
            "scopepilot": {
                "stream": self.name,
                "frames": self.committed,
                "complete": complete,
                "frame_metadata": FRAME_METADATA,
            },
        });
        write_json_atomic(
            &self.root.join(&self.name).join("zarr.json"),
            &group_document(attrs),
        )
    }

    fn create_arrays(&mut self, spec: FrameSpec) -> Result<(), String> {
        let s = &self.settings;
        let fpc = s.frames_per_chunk;
        let (h, w) = (spec.height as u64, spec.width as u64);
        let path = format!("/{}/{IMAGE_DATASET}", self.name);
        let store = Arc::new(
            FilesystemStore::new(&self.root)
                .map_err(|e| format!("cannot open {}: {e}", self.root.display()))?,
        );
        let mut builder = match spec.pixel_type {
            PixelType::U8 => {
                ArrayBuilder::new(vec![0, h, w], vec![fpc, h, w], data_type::uint8(), 0u8)
            }
            PixelType::U16 => {
                ArrayBuilder::new(vec![0, h, w], vec![fpc, h, w], data_type::uint16(), 0u16)
            }
            PixelType::F32 => {
                ArrayBuilder::new(vec![0, h, w], vec![fpc, h, w], data_type::float32(), 0f32)
            }
        };
        builder.dimension_names(Some(["t", "y", "x"]));
        if s.compression == Compression::Zstd {
            builder.bytes_to_bytes_codecs(vec![Arc::new(zarrs::array::codec::ZstdCodec::new(
                s.zstd_level,
                true,
            ))]);
        }
        let array = builder
            .build(store.clone(), &path)
            .map_err(|e| format!("cannot create {path}: {e}"))?;
        store_array_metadata(&self.root, &array)?;
        let mut meta_arrays = Vec::new();
        for column in FRAME_METADATA {
            let (dt, fill): (_, FillValueMetadata) = match column {
                "exposure_us" => (data_type::uint32(), 0u32.into()),
                "synthetic" => (data_type::bool(), FillValueMetadata::Bool(false)),
                _ => (data_type::uint64(), 0u64.into()),
            };
            let path = format!("/{}/{column}", self.name);
            let a = ArrayBuilder::new(vec![0], vec![META_CHUNK], dt, fill)
                .dimension_names(Some(["t"]))
                .build(store.clone(), &path)
                .map_err(|e| format!("cannot create {path}: {e}"))?;
            store_array_metadata(&self.root, &a)?;
            meta_arrays.push(a);
        }
        self.meta_arrays = meta_arrays;
        self.image = Some(Image {
            array,
            store,
            compressed: s.compression != Compression::None,
            spec,
            // One frame per chunk is stored straight from the frame: no chunk buffer.
            buf: Pixels::zeroed(FrameSpec::new(
                spec.width,
                if fpc == 1 {
                    0
                } else {
                    spec.height * fpc as u32
                },
                spec.pixel_type,
            )),
            in_buf: 0,
            chunk: 0,
            written: WrittenChunks::default(),
        });
        Ok(())
    }

    /// Append one frame. Its chunk is stored once full (every chunk file is written once,
    /// never rewritten); it becomes readable at the next checkpoint after that.
    pub fn push(&mut self, job: &Job, clock: &WallClock) -> Result<(), PushError> {
        if self.image.is_none() {
            self.create_arrays(job.spec).map_err(PushError::Fatal)?;
        }
        let fpc = self.settings.frames_per_chunk;
        let image = self.image.as_mut().expect("created above");
        if job.spec != image.spec {
            return Err(PushError::Frame(format!(
                "frame {} is {} but stream {:?} records {}",
                job.meta.frame_number, job.spec, self.name, image.spec
            )));
        }
        if job.pixels.pixel_type() != image.spec.pixel_type {
            return Err(PushError::Frame(
                "pixel type does not match its spec".into(),
            ));
        }
        if fpc == 1 {
            let result = image.store(&job.pixels);
            self.columns.push(&job.meta, clock);
            self.received += 1;
            return self.chunk_stored(1, result).map_err(PushError::Fatal);
        }
        let n = image.spec.pixel_count();
        let at = image.in_buf as usize * n;
        match (&mut image.buf, &job.pixels) {
            (Pixels::U8(d), Pixels::U8(s)) => d[at..at + n].copy_from_slice(s),
            (Pixels::U16(d), Pixels::U16(s)) => d[at..at + n].copy_from_slice(s),
            (Pixels::F32(d), Pixels::F32(s)) => d[at..at + n].copy_from_slice(s),
            _ => {
                return Err(PushError::Frame(
                    "pixel type does not match its spec".into(),
                ));
            }
        }
        image.in_buf += 1;
        self.received += 1;
        self.columns.push(&job.meta, clock);
        if image.in_buf == fpc {
            self.store_chunk_being_filled().map_err(PushError::Fatal)?;
        }
        Ok(())
    }

    /// Store the chunk being filled (full, or the last one at the end) and start the next.
    /// On failure the frames of that chunk are dropped: they are not recorded.
    fn store_chunk_being_filled(&mut self) -> Result<(), String> {
        let Some(image) = self.image.as_mut() else {
            return Ok(());
        };
        if image.in_buf == 0 {
            return Ok(());
        }
        // `store` takes the image mutably (it keeps the page-cache list), so the buffer is
        // lent out for the call; the empty placeholder allocates nothing.
        let buf = std::mem::replace(&mut image.buf, Pixels::U8(Vec::new()));
        let result = image.store(&buf);
        image.buf = buf;
        let frames = image.in_buf;
        image.in_buf = 0;
        self.chunk_stored(frames, result)
    }

    /// Account for the chunk just stored (`result`) holding the last `frames` frames received.
    /// On failure those frames are dropped: they are not recorded.
    fn chunk_stored(&mut self, frames: u64, result: Result<(), String>) -> Result<(), String> {
        match result {
            Ok(()) => {
                if let Some(image) = self.image.as_mut() {
                    image.chunk += 1;
                }
                self.stored += frames;
                Ok(())
            }
            Err(e) => {
                self.received -= frames;
                self.columns.truncate(self.received as usize);
                Err(e)
            }
        }
    }

    /// Make the frames of every stored chunk readable: store their per-frame metadata, then
    /// grow the array shapes (all `zarr.json` files replaced together).
    pub fn checkpoint(&mut self) -> Result<(), String> {
        let n = self.stored;
        if n == self.committed || self.image.is_none() {
            return Ok(());
        }
        let from = self.meta_chunks_done;
        let (c, a, root) = (&self.columns, &self.meta_arrays, &self.root);
        let base = c.base;
        store_column(root, &a[0], &c.frame_number, base, n, from)?;
        store_column(root, &a[1], &c.camera_timestamp_ns, base, n, from)?;
        store_column(root, &a[2], &c.arrival_unix_ns, base, n, from)?;
        store_column(root, &a[3], &c.exposure_us, base, n, from)?;
        store_column(root, &a[4], &c.synthetic, base, n, from)?;
        self.meta_chunks_done = n / META_CHUNK;
        self.columns
            .forget_before((self.meta_chunks_done * META_CHUNK) as usize);
        for a in &mut self.meta_arrays {
            a.set_shape(vec![n]).map_err(|e| e.to_string())?;
        }
        let image = self.image.as_mut().expect("checked above");
        let (h, w) = (image.spec.height as u64, image.spec.width as u64);
        image
            .array
            .set_shape(vec![n, h, w])
            .map_err(|e| e.to_string())?;
        store_metadata_together(
            &self.root,
            self.meta_arrays.iter().chain(std::iter::once(&image.array)),
        )?;
        self.committed = n;
        Ok(())
    }

    /// The end: store the last (partial) chunk, checkpoint, and write the final group
    /// metadata (frame interval, measured when not nominal; `complete`).
    pub fn finish(&mut self, failed: bool) -> Result<(), String> {
        let mut result = Ok(());
        if !failed {
            result = self.store_chunk_being_filled();
        }
        result = result.and(self.checkpoint());
        let interval = self
            .settings
            .frame_interval
            .map(|d| d.as_secs_f64())
            .or_else(|| self.columns.mean_interval_s(self.committed as usize));
        result.and(self.store_group(interval, true))
    }
}

/// The writer thread's loop: write frames as they come, checkpoint periodically, finish.
pub(super) fn run(
    rx: Receiver<Msg>,
    shared: Arc<Shared>,
    mut writers: Vec<StreamWriter>,
    clock: WallClock,
) {
    let interval = shared.checkpoint;
    let mut next_checkpoint = Instant::now() + interval;
    let mut failed = false;
    let mut finalised = false;
    let mut warned_mismatch = vec![false; writers.len()];
    // A write error ends the recording at once: no more frames are taken, the store is
    // finalised with what was written, then the error shows in status. The thread stays
    // until `Finish` only to give the budget of frames still queued back.
    let fail = |shared: &Shared, writers: &mut [StreamWriter], e: String| {
        tracing::error!(recording = %shared.name, error = %e, "recording failed; the frames written so far stay readable");
        shared.accepting.store(false, Ordering::Release);
        finalise(shared, writers, true);
        *shared.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        shared.mark_finished();
    };
    loop {
        let timeout = next_checkpoint.saturating_duration_since(Instant::now());
        match rx.recv_timeout(timeout) {
            Ok(Msg::Frame(job)) => {
                let i = job.stream;
                if !failed {
                    match writers[i].push(&job, &clock) {
                        Ok(()) => {}
                        Err(PushError::Frame(e)) => {
                            shared.streams[i].mismatched.fetch_add(1, Ordering::Relaxed);
                            if !warned_mismatch[i] {
                                warned_mismatch[i] = true;
                                tracing::warn!(recording = %shared.name, error = %e, "frame not recorded");
                            }
                        }
                        Err(PushError::Fatal(e)) => {
                            failed = true;
                            finalised = true;
                            fail(&shared, &mut writers, e);
                        }
                    }
                }
                shared.release(job);
            }
            Ok(Msg::Finish) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
        if !failed && Instant::now() >= next_checkpoint {
            let mut error = None;
            for (i, w) in writers.iter_mut().enumerate() {
                if let Err(e) = w.checkpoint() {
                    error.get_or_insert(e);
                }
                shared.publish_committed(i, w);
            }
            if let Some(e) = error {
                failed = true;
                finalised = true;
                fail(&shared, &mut writers, e);
            }
            next_checkpoint = Instant::now() + interval;
        }
    }
    if !finalised {
        if let Some(e) = finalise(&shared, &mut writers, false) {
            *shared.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        }
        shared.mark_finished();
    }
}

/// Write the last chunks (unless `failed`), checkpoint and finish every stream; returns the
/// first error.
fn finalise(shared: &Shared, writers: &mut [StreamWriter], failed: bool) -> Option<String> {
    let mut first = None;
    for (i, w) in writers.iter_mut().enumerate() {
        if let Err(e) = w.finish(failed) {
            tracing::warn!(recording = %shared.name, stream = w.name(), error = %e, "final checkpoint failed; the store exposes the frames of the last successful one");
            first.get_or_insert(e);
        }
        shared.publish_committed(i, w);
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_forget_stored_chunks_but_keep_the_mean_interval_and_indices() {
        let clock = WallClock::now();
        let mut c = Columns::default();
        for n in 0..2500u64 {
            c.push(&FrameMeta::arriving_now(n, 1_000 + n * 10_000_000), &clock);
        }
        c.forget_before(2048);
        assert_eq!((c.base, c.frame_number.len()), (2048, 452));
        assert_eq!(c.frame_number[0], 2048);
        let interval = c.mean_interval_s(2500).unwrap();
        assert!((interval - 0.01).abs() < 1e-12, "{interval}");
        c.truncate(2100);
        assert_eq!(c.frame_number.len(), 52);
        // Forgetting is idempotent and never goes past what is held.
        c.forget_before(1000);
        c.forget_before(5000);
        assert_eq!((c.base, c.frame_number.len()), (2100, 0));
    }
}
