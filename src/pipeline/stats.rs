//! `StageStats`: the counters every stage (and the raw tap) keeps, areaDetector-style.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::latency::LatencyHistogram;

/// Counters and latency of one stage. All fields are updated lock-free.
#[derive(Debug, Default)]
pub struct StageStats {
    /// Frames placed in the stage's input queue.
    pub enqueued: AtomicU64,
    /// Frames the stage took from its queue.
    pub frames_in: AtomicU64,
    /// Frames the stage emitted.
    pub frames_out: AtomicU64,
    /// Frames dropped by the input queue's policy.
    pub dropped: AtomicU64,
    /// Frames the stage failed to process (skipped, pipeline continues).
    pub errors: AtomicU64,
    /// Synthetic (generated, e.g. interpolated) frames among `frames_out`.
    pub synthetic_out: AtomicU64,
    /// Intervals not interpolated because frames were missing across them (a gap larger than
    /// the stage allows).
    pub gaps_skipped: AtomicU64,
    /// Time from a frame's arrival in scopepilot to its emission by this stage.
    pub latency: LatencyHistogram,
    /// Time the stage spent processing each input frame.
    pub process_time: LatencyHistogram,
}

impl StageStats {
    /// Frames waiting in the input queue now.
    pub fn queue_depth(&self) -> u64 {
        let enq = self.enqueued.load(Ordering::Relaxed);
        let gone = self.frames_in.load(Ordering::Relaxed) + self.dropped.load(Ordering::Relaxed);
        enq.saturating_sub(gone)
    }
}
