//! `LatencyHistogram`: a lock-free, allocation-free histogram of durations in microseconds.
//!
//! Log-linear buckets (8 per power of two, exact below 16 us) bound the relative error of a
//! quantile to 1/16 of its value. Recording is two relaxed atomic adds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
const EXACT: usize = 16;
const BUCKETS: usize = EXACT + (64 - 4) * SUB;

/// A histogram of durations.
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }
}

fn bucket_of(us: u64) -> usize {
    if us < EXACT as u64 {
        return us as usize;
    }
    let exp = 63 - us.leading_zeros(); // >= 4
    let sub = ((us >> (exp - SUB_BITS)) as usize) & (SUB - 1);
    EXACT + (exp as usize - 4) * SUB + sub
}

/// Lower bound and width of bucket `b`, in microseconds.
fn bucket_range(b: usize) -> (u64, u64) {
    if b < EXACT {
        return (b as u64, 1);
    }
    let exp = ((b - EXACT) / SUB) as u32 + 4;
    let sub = ((b - EXACT) % SUB) as u64;
    let width = 1u64 << (exp - SUB_BITS);
    ((1u64 << exp) + sub * width, width)
}

impl LatencyHistogram {
    /// Record one duration.
    pub fn record(&self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        self.buckets[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Number of durations recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Mean in microseconds (0 when empty).
    pub fn mean_us(&self) -> f64 {
        let n = self.count();
        if n == 0 {
            0.0
        } else {
            self.sum_us.load(Ordering::Relaxed) as f64 / n as f64
        }
    }

    /// The `q`-quantile (0..=1) in microseconds, as the midpoint of its bucket (0 when empty).
    pub fn quantile_us(&self, q: f64) -> f64 {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0.0;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, width) = bucket_range(b);
                return if width == 1 {
                    lo as f64
                } else {
                    lo as f64 + width as f64 / 2.0
                };
            }
        }
        0.0
    }

    /// Cumulative counts at [`EXPORT_BOUNDS_US`], for Prometheus-style export. The bounds
    /// are bucket edges, so the counts are exact: a duration (whole microseconds) is counted
    /// under a bound when it is below it.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let mut cumulative = Vec::with_capacity(EXPORT_BOUNDS_US.len());
        let (mut seen, mut b) = (0u64, 0usize);
        for &bound in EXPORT_BOUNDS_US.iter() {
            while b < counts.len() && {
                let (lo, w) = bucket_range(b);
                lo + w <= bound
            } {
                seen += counts[b];
                b += 1;
            }
            cumulative.push(seen);
        }
        HistogramSnapshot {
            cumulative,
            count: counts.iter().sum(),
            sum_us: self.sum_us.load(Ordering::Relaxed),
        }
    }
}

/// Exported bounds per power of two. Four (a factor of about 1.19 between bounds) keep an
/// interpolated quantile within about 10 % of the truth; with one per power of two, a p99 near
/// a bound read anywhere from 1x to 2x of it from one scrape interval to the next.
pub const EXPORT_BOUNDS_PER_OCTAVE: usize = 4;

/// Powers of two the exported bounds span: from 64 us to 64 us << 18 = 16.8 s.
const EXPORT_OCTAVES: usize = 18;

/// Upper bounds of exported histograms, microseconds: from 64 us to 16.8 s, at
/// [`EXPORT_BOUNDS_PER_OCTAVE`] per power of two (1, 1.25, 1.5, 1.75 times it). Each is a
/// bucket edge of [`LatencyHistogram`], so the exported counts are exact.
pub const EXPORT_BOUNDS_US: [u64; EXPORT_OCTAVES * EXPORT_BOUNDS_PER_OCTAVE + 1] = {
    let mut b = [0u64; EXPORT_OCTAVES * EXPORT_BOUNDS_PER_OCTAVE + 1];
    let mut i = 0;
    while i < b.len() {
        let octave = 64u64 << (i / EXPORT_BOUNDS_PER_OCTAVE);
        let step = (i % EXPORT_BOUNDS_PER_OCTAVE) as u64;
        b[i] = octave + octave * step / EXPORT_BOUNDS_PER_OCTAVE as u64;
        i += 1;
    }
    b
};

/// A histogram's counts at [`EXPORT_BOUNDS_US`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistogramSnapshot {
    /// Durations below each bound of [`EXPORT_BOUNDS_US`].
    pub cumulative: Vec<u64>,
    /// All durations (the `+Inf` bucket).
    pub count: u64,
    /// Sum of all durations, microseconds.
    pub sum_us: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values_without_gaps() {
        let mut prev_end = 0;
        for b in 0..BUCKETS - 1 {
            let (lo, w) = bucket_range(b);
            assert_eq!(lo, prev_end, "bucket {b}");
            prev_end = lo + w;
        }
        for us in [0u64, 1, 15, 16, 17, 100, 1000, 123_456, 3_600_000_000] {
            let (lo, w) = bucket_range(bucket_of(us));
            assert!(lo <= us && us < lo + w, "{us} in [{lo}, {})", lo + w);
        }
    }

    #[test]
    fn quantiles_are_within_the_bucket_error() {
        let h = LatencyHistogram::default();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        for (q, want) in [(0.5, 500.0), (0.99, 990.0), (0.01, 10.0)] {
            let got = h.quantile_us(q);
            assert!(
                (got - want).abs() <= want / 16.0 + 1.0,
                "q{q}: {got} vs {want}"
            );
        }
        assert_eq!(h.count(), 1000);
        assert!((h.mean_us() - 500.5).abs() < 1e-9);
        assert_eq!(LatencyHistogram::default().quantile_us(0.5), 0.0);
    }

    #[test]
    fn export_bounds_rise_by_a_quarter_octave_and_are_bucket_edges() {
        assert_eq!(EXPORT_BOUNDS_US[0], 64);
        assert_eq!(&EXPORT_BOUNDS_US[1..5], [80, 96, 112, 128]);
        assert_eq!(*EXPORT_BOUNDS_US.last().unwrap(), 64 << EXPORT_OCTAVES);
        for w in EXPORT_BOUNDS_US.windows(2) {
            let ratio = w[1] as f64 / w[0] as f64;
            assert!((1.14..=1.25).contains(&ratio), "{w:?}");
        }
        for &bound in &EXPORT_BOUNDS_US {
            let (lo, _) = bucket_range(bucket_of(bound));
            assert_eq!(lo, bound, "{bound} us is not a bucket edge");
        }
    }

    #[test]
    fn snapshots_count_exactly_below_each_bound() {
        let h = LatencyHistogram::default();
        for us in [10u64, 63, 64, 79, 80, 127, 128, 5000, 40_000_000] {
            h.record(Duration::from_micros(us));
        }
        let s = h.snapshot();
        assert_eq!(s.cumulative.len(), EXPORT_BOUNDS_US.len());
        for (bound, got) in EXPORT_BOUNDS_US.iter().zip(&s.cumulative) {
            let want = [10u64, 63, 64, 79, 80, 127, 128, 5000, 40_000_000]
                .iter()
                .filter(|us| *us < bound)
                .count() as u64;
            assert_eq!(*got, want, "below {bound} us");
        }
        assert_eq!(s.count, 9);
        assert_eq!(
            s.sum_us,
            10 + 63 + 64 + 79 + 80 + 127 + 128 + 5000 + 40_000_000
        );
    }
}
