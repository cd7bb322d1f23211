//! `Pacer`: keeps a pull source on its (changeable) frame interval.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::FrameInterval;

/// Longest single sleep, so that stop requests are noticed quickly.
const MAX_SLEEP: Duration = Duration::from_millis(20);

/// Schedules exposures at a [`FrameInterval`] that may change while running.
///
/// If the source falls behind by more than one interval the schedule restarts from now
/// instead of bursting to catch up (a camera cannot expose in the past); such frames are
/// counted in [`Pacer::late`].
#[derive(Debug)]
pub struct Pacer {
    interval: Arc<FrameInterval>,
    next: Option<Instant>,
    late: u64,
}

impl Pacer {
    /// A pacer whose first frame is due immediately.
    pub fn new(interval: Arc<FrameInterval>) -> Self {
        Self {
            interval,
            next: None,
            late: 0,
        }
    }

    /// Returns the nominal interval before this frame when the next frame is due now, or
    /// `None` after sleeping at most 20 ms when it is not due yet.
    pub fn wait(&mut self) -> Option<Duration> {
        let now = Instant::now();
        let interval = self.interval.get();
        let due = *self.next.get_or_insert(now);
        if now < due {
            std::thread::sleep((due - now).min(MAX_SLEEP));
            if Instant::now() < due {
                return None;
            }
        }
        let mut next = due + interval;
        let now = Instant::now();
        if next + interval < now {
            // Whole frame slots that passed while the source was busy.
            self.late += ((now - next).as_nanos() / interval.as_nanos().max(1)) as u64;
            next = now + interval;
        }
        self.next = Some(next);
        Some(interval)
    }

    /// Frame slots that passed without a frame because the source could not keep up.
    pub fn late(&self) -> u64 {
        self.late
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_frames_at_the_interval_and_picks_up_changes() {
        let interval = FrameInterval::new(Duration::from_millis(5));
        let mut pacer = Pacer::new(interval.clone());
        let start = Instant::now();
        let mut frames = 0;
        while frames < 5 {
            if pacer.wait().is_some() {
                frames += 1;
            }
        }
        // 5 frames at 5 ms: the first is immediate, so at least 20 ms passed.
        assert!(start.elapsed() >= Duration::from_millis(20));
        interval.set(Duration::from_millis(1)).unwrap();
        let mut got = None;
        while got.is_none() {
            got = pacer.wait();
        }
        assert_eq!(got, Some(Duration::from_millis(1)));
    }

    #[test]
    fn a_source_slower_than_its_rate_counts_the_missed_slots() {
        let mut pacer = Pacer::new(FrameInterval::new(Duration::from_millis(2)));
        assert!(pacer.wait().is_some());
        std::thread::sleep(Duration::from_millis(12)); // a frame that took 6 intervals
        while pacer.wait().is_none() {}
        assert!(pacer.late() >= 3, "late {}", pacer.late());
    }

    #[test]
    fn rejects_out_of_range_intervals() {
        let interval = FrameInterval::new(Duration::from_millis(5));
        assert!(interval.set(Duration::from_nanos(10)).is_err());
        assert!(interval.set(Duration::from_secs(7200)).is_err());
        assert_eq!(interval.get(), Duration::from_millis(5));
    }
}
