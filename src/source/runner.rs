//! The camera thread: runs a pull [`FrameSource`] and hands its frames to the ingest ring.
//!
//! This thread never blocks on the pipeline: a full ring applies its overflow policy, an
//! exhausted frame pool loses the frame, and both are counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use super::{Capture, FrameSource};
use crate::frame::FramePool;
use crate::ring::IngestProducer;

/// Counters of a source, readable from any thread.
#[derive(Debug, Default)]
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
}

/// A running camera thread.
#[derive(Debug)]
pub struct SourceThread {
    handle: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    stats: Arc<SourceStats>,
}

impl SourceThread {
    /// Start capturing from `source` into `ring`, with a pool of `pool_slots` buffers.
    pub fn spawn(
        mut source: Box<dyn FrameSource>,
        mut ring: IngestProducer,
        pool_slots: usize,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(SourceStats::default());
        let mut pool = FramePool::new(source.spec(), pool_slots, pool_slots);
        let (stop2, stats2) = (stop.clone(), stats.clone());
        let handle = std::thread::Builder::new()
            .name(format!("camera-{}", source.kind()))
            .spawn(move || {
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
                            stats2.captured.fetch_add(1, Ordering::Relaxed);
                            ring.push(frame);
                        }
                        Ok(Capture::Lost { .. }) => {
                            stats2.lost_no_buffer.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Capture::Idle) => {}
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
