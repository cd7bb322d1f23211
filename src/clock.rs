//! `WallClock`: Unix timestamps for monotonic instants, for metadata that leaves the process.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Maps monotonic arrival instants to Unix time (ns), anchored once (per recording,
/// per event engine) so that the instants keep their order and spacing.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    instant: Instant,
    unix_ns: i128,
}

impl WallClock {
    /// Anchor the mapping now.
    pub fn now() -> Self {
        let unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        Self {
            instant: Instant::now(),
            unix_ns,
        }
    }

    /// Unix time of `t`, in nanoseconds.
    pub fn unix_ns(&self, t: Instant) -> u64 {
        let offset = if t >= self.instant {
            (t - self.instant).as_nanos() as i128
        } else {
            -((self.instant - t).as_nanos() as i128)
        };
        (self.unix_ns + offset).max(0) as u64
    }
}
