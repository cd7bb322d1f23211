//! Pre/post-trigger capture, like areaDetector's circular buffer plugin: a [`CaptureTap`] on a
//! stream keeps copies of its last frames; when a rule triggers, those frames and the next
//! ones go to a recording of their own (`<recording.root>/capture-<rule>-f<frame>-<ms>.zarr`).
//!
//! The tap runs on the thread that publishes the stream and never waits: frames are copied
//! into a recycled pool; when the pool is exhausted the frame is missed and counted.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::frame::{Frame, FramePool};
use crate::pipeline::Taps;
use crate::sink::FrameSink;
use crate::sink::record::{Recording, RecordingConfig};
use crate::sink::subscribers::SubscriberHub;

/// Spare buffers beyond the history, for frames in flight.
const SPARE_FRAMES: usize = 4;

struct ActiveCapture {
    hub: Arc<SubscriberHub>,
    recording: Arc<Recording>,
    remaining: u32,
}

#[derive(Default)]
struct TapState {
    keep: usize,
    pool: Option<FramePool>,
    history: VecDeque<Frame>,
    active: Vec<ActiveCapture>,
}

/// Keeps a stream's last frames and feeds running captures.
pub struct CaptureTap {
    stream: String,
    state: Mutex<TapState>,
    missed: AtomicU64,
}

/// A capture that started.
#[derive(Debug, Clone, PartialEq)]
pub struct StartedCapture {
    /// Recording name.
    pub name: String,
    /// Store directory.
    pub path: String,
    /// Frames from before the trigger that were available (at most `pre_frames`).
    pub pre_captured: u32,
}

fn finish(recording: Arc<Recording>) {
    // Stopping flushes to disk: never on the stream's thread.
    let spawned = std::thread::Builder::new()
        .name("capture-finish".into())
        .spawn({
            let recording = recording.clone();
            move || {
                let st = recording.stop();
                tracing::info!(capture = %st.name, frames = st.frames_written(), "capture written");
            }
        });
    if spawned.is_err() {
        recording.stop();
    }
}

impl CaptureTap {
    fn new(stream: &str) -> Self {
        Self {
            stream: stream.into(),
            state: Mutex::new(TapState::default()),
            missed: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, TapState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keep the last `frames` frames from now on.
    fn keep(&self, frames: usize) {
        let mut s = self.lock();
        s.keep = frames;
        while s.history.len() > frames {
            s.history.pop_front();
        }
        if frames == 0 {
            s.pool = None;
        }
    }

    /// Frames this tap could not copy (its pool was exhausted).
    pub fn missed(&self) -> u64 {
        self.missed.load(Ordering::Relaxed)
    }

    /// Start a capture: the kept frames (up to `pre`) now, then the next `post` frames.
    fn start(
        &self,
        config: &RecordingConfig,
        name: &str,
        pre: u32,
        post: u32,
        interval: Option<Duration>,
    ) -> Result<StartedCapture, String> {
        let hub = SubscriberHub::new(&self.stream, Arc::new(AtomicU64::new(0)));
        let recording = Arc::new(
            Recording::start(config, name, vec![hub.clone()], interval)
                .map_err(|e| e.to_string())?,
        );
        let mut s = self.lock();
        let n = (pre as usize).min(s.history.len());
        for f in s.history.iter().skip(s.history.len() - n) {
            hub.publish(f);
        }
        let started = StartedCapture {
            name: name.into(),
            path: recording.status().path.display().to_string(),
            pre_captured: n as u32,
        };
        if post == 0 {
            finish(recording);
        } else {
            s.active.push(ActiveCapture {
                hub,
                recording,
                remaining: post,
            });
        }
        Ok(started)
    }

    /// End running captures now (the acquisition stopped) and forget the kept frames.
    fn finish_all(&self) {
        let mut s = self.lock();
        s.history.clear();
        for a in s.active.drain(..) {
            finish(a.recording);
        }
    }
}

impl FrameSink for CaptureTap {
    fn offer(&self, frame: &Frame) {
        let mut s = self.lock();
        if s.keep == 0 && s.active.is_empty() {
            return;
        }
        let frames = s.keep + SPARE_FRAMES;
        if s.pool
            .as_ref()
            .is_none_or(|p| p.spec() != frame.spec() || p.max_slots() < frames)
        {
            s.history.clear();
            s.pool = Some(FramePool::new(frame.spec(), 0, frames));
        }
        let Some(mut slot) = s.pool.as_mut().and_then(FramePool::acquire) else {
            self.missed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        *slot.meta_mut() = *frame.meta();
        slot.pixels_mut().copy_from(frame.pixels());
        let copy = slot.publish();
        for a in &mut s.active {
            a.hub.publish(&copy);
            a.remaining -= 1;
        }
        let (done, running): (Vec<_>, Vec<_>) = s.active.drain(..).partition(|a| a.remaining == 0);
        s.active = running;
        for a in done {
            finish(a.recording);
        }
        if s.keep > 0 {
            s.history.push_back(copy);
            while s.history.len() > s.keep {
                s.history.pop_front();
            }
        }
    }
}

/// The capture taps of all streams that rules capture from.
pub struct CaptureSet {
    taps: Taps,
    recording: RecordingConfig,
    attached: Mutex<HashMap<String, (Arc<CaptureTap>, u64)>>,
}

impl CaptureSet {
    /// Taps on `taps`' streams, writing with `recording`'s settings.
    pub fn new(taps: Taps, recording: RecordingConfig) -> Self {
        Self {
            taps,
            recording,
            attached: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, (Arc<CaptureTap>, u64)>> {
        self.attached.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keep `frames` frames of each listed stream; detach taps from other streams.
    pub fn configure(&self, keep: &HashMap<String, usize>) {
        let mut attached = self.lock();
        attached.retain(|stream, (tap, id)| {
            let wanted = keep.contains_key(stream);
            if !wanted {
                tap.finish_all();
                if let Some(hub) = self.taps.get(stream) {
                    hub.detach(*id);
                }
            }
            wanted
        });
        for (stream, &frames) in keep {
            let Some(hub) = self.taps.get(stream) else {
                continue; // rules are checked against the streams; nothing to attach to
            };
            let (tap, _) = attached.entry(stream.clone()).or_insert_with(|| {
                let tap = Arc::new(CaptureTap::new(stream));
                let id = hub.attach(tap.clone());
                (tap, id)
            });
            tap.keep(frames);
        }
    }

    /// Start a capture of `stream` named `name`.
    pub fn start(
        &self,
        stream: &str,
        name: &str,
        pre: u32,
        post: u32,
        interval: Option<Duration>,
    ) -> Result<StartedCapture, String> {
        let tap = self
            .lock()
            .get(stream)
            .map(|(t, _)| t.clone())
            .ok_or_else(|| format!("no capture buffer on stream {stream:?}"))?;
        tap.start(&self.recording, name, pre, post, interval)
    }

    /// End every running capture and forget kept frames (the acquisition stopped).
    pub fn finish_all(&self) {
        for (tap, _) in self.lock().values() {
            tap.finish_all();
        }
    }

    /// Frames the taps could not copy, in total.
    pub fn missed(&self) -> u64 {
        self.lock().values().map(|(t, _)| t.missed()).sum()
    }
}
