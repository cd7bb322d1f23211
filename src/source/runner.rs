//! The camera thread: runs a pull [`FrameSource`] and hands its frames to the ingest ring.
//!
//! This thread never blocks on the pipeline: a full ring applies its overflow policy, an
//! exhausted frame pool loses the frame, and both are counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Capture, FrameInterval, FrameSource};
use crate::frame::FramePool;
use crate::ring::IngestProducer;

/// Counters of a source, readable from any thread.
#[derive(Debug)]
pub struct SourceStats {
    /// Frames captured and handed to the ring.
    pub captured: AtomicU64,
    /// Frames exposed but lost because no buffer was free.
    pub lost_no_buffer: AtomicU64,
    /// Frame slots missed because the source could not keep its frame rate.
    pub late: AtomicU64,
    /// Frames the camera lost before they reached scopepilot (gaps in its frame ids).
    pub missing: AtomicU64,
    /// Frames that arrived incomplete (missing packets, timeouts) and were discarded.
    pub incomplete: AtomicU64,
    /// Capture errors (the source stops at the first one).
    pub errors: AtomicU64,
    /// Set once the source has no more frames or failed.
    pub finished: AtomicBool,
    /// Times the source went quiet for longer than [`stall_threshold`] (and is then stalled).
    pub stalls: AtomicU64,
    /// True while the source is stalled: no frame for longer than [`stall_threshold`].
    pub stalled: AtomicBool,
    started: Instant,
    /// Nanoseconds from `started` to the last frame (or to the start, before the first).
    last_frame_nanos: AtomicU64,
}

impl SourceStats {
    fn new() -> Self {
        Self {
            captured: AtomicU64::new(0),
            lost_no_buffer: AtomicU64::new(0),
            late: AtomicU64::new(0),
            missing: AtomicU64::new(0),
            incomplete: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            finished: AtomicBool::new(false),
            stalls: AtomicU64::new(0),
            stalled: AtomicBool::new(false),
            started: Instant::now(),
            last_frame_nanos: AtomicU64::new(0),
        }
    }

    /// Time since the source's last frame (since it started, before the first frame).
    pub fn since_last_frame(&self) -> Duration {
        let last = Duration::from_nanos(self.last_frame_nanos.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    /// A frame (captured or lost for want of a buffer) came from the source: a stall is over.
    fn frame_seen(&self, source: &str) {
        let now = self.started.elapsed().as_nanos() as u64;
        let last = self.last_frame_nanos.swap(now, Ordering::Relaxed);
        if self.stalled.swap(false, Ordering::Relaxed) {
            let quiet = Duration::from_nanos(now.saturating_sub(last));
            tracing::warn!(
                source,
                quiet_s = quiet.as_secs_f64(),
                "source resumed after a stall"
            );
        }
    }

    /// No frame this time: mark a stall once the source has been quiet for too long.
    fn idle(&self, source: &str, interval: Duration) {
        let quiet = self.since_last_frame();
        let threshold = stall_threshold(interval);
        if quiet > threshold && !self.stalled.swap(true, Ordering::Relaxed) {
            let stalls = self.stalls.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                source,
                quiet_s = quiet.as_secs_f64(),
                expected_interval_ms = interval.as_secs_f64() * 1e3,
                stalls,
                "source stalled: no frame for longer than {threshold:?}; waiting for it"
            );
        }
    }
}

/// How long a source may go without a frame before it counts as stalled: ten frame
/// intervals, and never less than a second.
pub fn stall_threshold(interval: Duration) -> Duration {
    (interval * 10).max(Duration::from_secs(1))
}

/// A running camera thread.
#[derive(Debug)]
pub struct SourceThread {
    handle: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    stats: Arc<SourceStats>,
}

impl SourceThread {
    /// Start capturing from `source` into `ring`, with a pool of `pool_slots` buffers. The
    /// source is stalled when it sends nothing for [`stall_threshold`] of `interval`.
    pub fn spawn(
        mut source: Box<dyn FrameSource>,
        mut ring: IngestProducer,
        pool_slots: usize,
        interval: Arc<FrameInterval>,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(SourceStats::new());
        let mut pool = FramePool::new(source.spec(), pool_slots, pool_slots);
        let (stop2, stats2) = (stop.clone(), stats.clone());
        let name = format!("camera-{}", source.kind());
        let handle = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                crate::thread_nice::raise_current_thread(&name, crate::thread_nice::CAMERA_NICE);
                while !stop2.load(Ordering::Relaxed) {
                    let result = source.capture(&mut pool);
                    stats2.late.store(source.late_frames(), Ordering::Relaxed);
                    let losses = source.losses();
                    stats2.missing.store(losses.missing, Ordering::Relaxed);
                    stats2
                        .incomplete
                        .store(losses.incomplete, Ordering::Relaxed);
                    match result {
                        Ok(Capture::Frame(frame)) => {
                            stats2.frame_seen(source.kind());
                            stats2.captured.fetch_add(1, Ordering::Relaxed);
                            ring.push(frame);
                        }
                        Ok(Capture::Lost { .. }) => {
                            stats2.frame_seen(source.kind());
                            stats2.lost_no_buffer.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Capture::Idle) => stats2.idle(source.kind(), interval.get()),
                        Ok(Capture::End) => {
                            tracing::info!(source = source.kind(), "source has no more frames");
                            break;
                        }
                        Err(e) => {
                            stats2.errors.fetch_add(1, Ordering::Relaxed);
                            tracing::error!(source = source.kind(), error = %e, "source failed");
                            break;
                        }
                    }
                }
                stats2.finished.store(true, Ordering::Relaxed);
            })?;
        Ok(Self {
            handle: Some(handle),
            stop,
            stats,
        })
    }

    /// Counters of this source.
    pub fn stats(&self) -> Arc<SourceStats> {
        self.stats.clone()
    }

    /// Ask the thread to stop and wait for it.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take()
            && h.join().is_err()
        {
            tracing::error!("camera thread panicked");
        }
    }
}

impl Drop for SourceThread {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{FrameSpec, PixelType};
    use crate::ring::{OverflowPolicy, ingest_ring};
    use crate::source::SourceError;

    /// A source that sends `before` frames, goes quiet for `quiet`, then sends `after`
    /// frames and ends: a camera whose trigger or cable stalled and came back.
    struct StallingSource {
        before: u64,
        quiet: Duration,
        after: u64,
        sent: u64,
        quiet_since: Option<Instant>,
    }

    impl FrameSource for StallingSource {
        fn kind(&self) -> &'static str {
            "stalling"
        }

        fn spec(&self) -> FrameSpec {
            FrameSpec::new(4, 4, PixelType::U16)
        }

        fn capture(&mut self, pool: &mut FramePool) -> Result<Capture, SourceError> {
            std::thread::sleep(Duration::from_millis(5));
            if self.sent == self.before {
                let since = *self.quiet_since.get_or_insert_with(Instant::now);
                if since.elapsed() < self.quiet {
                    return Ok(Capture::Idle);
                }
            }
            if self.sent == self.before + self.after {
                return Ok(Capture::End);
            }
            self.sent += 1;
            let mut writer = pool.acquire().expect("the test drains the ring");
            writer.meta_mut().frame_number = self.sent;
            Ok(Capture::Frame(writer.publish_arrived()))
        }
    }

    #[test]
    fn a_source_that_goes_quiet_is_stalled_once_and_resumes_without_losing_frames() {
        let (producer, consumer) = ingest_ring(64, OverflowPolicy::DropOldest);
        let source = StallingSource {
            before: 10,
            quiet: Duration::from_millis(1500),
            after: 10,
            sent: 0,
            quiet_since: None,
        };
        // 10 ms frames: the stall threshold is the 1 s floor, not ten intervals (100 ms).
        let interval = FrameInterval::new(Duration::from_millis(10));
        let thread = SourceThread::spawn(Box::new(source), producer, 8, interval).unwrap();
        let stats = thread.stats();
        let mut numbers = Vec::new();
        let mut saw_stalled = false;
        let ring = consumer.stats();
        // The camera thread asked for a higher priority: it has it exactly when this process
        // may raise a thread's priority (root or CAP_SYS_NICE), and keeps 0 otherwise.
        let camera = crate::thread_nice::CAMERA_NICE;
        let expected = if crate::thread_nice::may_raise_to(camera) {
            camera
        } else {
            0
        };
        let started = std::time::Instant::now();
        let camera = loop {
            // Its first act is to set its priority; give it the time to get there.
            let camera = crate::thread_nice::of_threads_named("camera-stalling");
            let done = !camera.is_empty() && camera.iter().all(|n| *n == expected);
            if done || started.elapsed() > Duration::from_secs(1) {
                break camera;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        assert!(
            !camera.is_empty() && camera.iter().all(|n| *n == expected),
            "{camera:?}"
        );
        while !stats.finished.load(Ordering::Relaxed) || ring.depth() > 0 {
            saw_stalled |= stats.stalled.load(Ordering::Relaxed);
            if let Some(frame) = consumer.pop_timeout(Duration::from_millis(5)) {
                numbers.push(frame.meta().frame_number);
            }
        }
        assert!(
            saw_stalled,
            "the 1.5 s pause was seen as a stall while it lasted"
        );
        assert_eq!(
            stats.stalls.load(Ordering::Relaxed),
            1,
            "one pause, one stall"
        );
        assert!(
            !stats.stalled.load(Ordering::Relaxed),
            "the next frame ended it"
        );
        assert_eq!(
            numbers,
            (1..=20).collect::<Vec<_>>(),
            "no frame lost around it"
        );
        assert_eq!(stats.captured.load(Ordering::Relaxed), 20);
    }

    #[test]
    fn the_stall_threshold_is_ten_intervals_and_at_least_a_second() {
        assert_eq!(
            stall_threshold(Duration::from_millis(10)),
            Duration::from_secs(1)
        );
        assert_eq!(
            stall_threshold(Duration::from_millis(500)),
            Duration::from_secs(5)
        );
    }
}
