//! Peaks of a score map: the rule that turns a detection model's output into event
//! positions. It is the same rule the training scripts use (`training/peaks.py`), and the
//! shipped package's `test_events.json` pins that both agree.
//!
//! Candidates are pixels inside the region with a score at or above the threshold that are at
//! least as high as all their 8 neighbours. They are taken strongest first (ties: row-major
//! order), and each is accepted if it lies at least `min_distance` (Euclidean) from every peak
//! accepted before it.

use crate::events::BoundingBox;

/// One accepted peak.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peak {
    /// Row.
    pub y: u32,
    /// Column.
    pub x: u32,
    /// Score at the peak.
    pub score: f32,
}

/// Reusable buffers and settings of the peak rule.
#[derive(Debug, Clone)]
pub struct PeakFinder {
    /// Lowest score of a peak.
    pub threshold: f32,
    /// Least distance between two peaks, pixels.
    pub min_distance: f32,
    /// Most peaks returned.
    pub max_peaks: usize,
    candidates: Vec<(f32, u32)>,
}

impl PeakFinder {
    /// A finder with these settings.
    pub fn new(threshold: f32, min_distance: f32, max_peaks: usize) -> Self {
        Self {
            threshold,
            min_distance,
            max_peaks,
            candidates: Vec::new(),
        }
    }

    /// The peaks of the `w`-wide `map` inside `region`, strongest first, into `out`
    /// (cleared first).
    pub fn find(&mut self, map: &[f32], w: usize, region: BoundingBox, out: &mut Vec<Peak>) {
        out.clear();
        self.candidates.clear();
        let h = map.len() / w.max(1);
        let (x0, y0) = (region.x as usize, region.y as usize);
        let (x1, y1) = (
            (x0 + region.width as usize).min(w),
            (y0 + region.height as usize).min(h),
        );
        for y in y0..y1 {
            let row = &map[y * w..(y + 1) * w];
            for (x, &v) in row.iter().enumerate().take(x1).skip(x0) {
                // NaN is never a peak (and never outranks a neighbour).
                if v.is_nan() || v < self.threshold {
                    continue;
                }
                let is_max = (y.saturating_sub(1)..(y + 2).min(h)).all(|ny| {
                    let nrow = &map[ny * w..(ny + 1) * w];
                    nrow[x.saturating_sub(1)..(x + 2).min(w)]
                        .iter()
                        .all(|&n| n.is_nan() || n <= v)
                });
                if is_max {
                    self.candidates.push((v, (y * w + x) as u32));
                }
            }
        }
        self.candidates
            .sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let d2 = self.min_distance * self.min_distance;
        for &(score, i) in &self.candidates {
            if out.len() >= self.max_peaks {
                break;
            }
            let (y, x) = (i / w as u32, i % w as u32);
            let far = out.iter().all(|p| {
                let (dy, dx) = (p.y as f32 - y as f32, p.x as f32 - x as f32);
                dy * dy + dx * dx >= d2
            });
            if far {
                out.push(Peak { y, x, score });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(w: u32, h: u32) -> BoundingBox {
        BoundingBox {
            x: 0,
            y: 0,
            width: w,
            height: h,
        }
    }

    #[test]
    fn strongest_first_and_suppresses_close_weaker_peaks() {
        let (w, h) = (12usize, 8usize);
        let mut map = vec![0.0f32; w * h];
        map[2 * w + 2] = 0.9; // strongest
        map[2 * w + 5] = 0.8; // 3 px away: suppressed with min distance 4
        map[6 * w + 10] = 0.7; // far: kept
        map[6 * w + 1] = 0.4; // below threshold
        let mut finder = PeakFinder::new(0.5, 4.0, 10);
        let mut out = Vec::new();
        finder.find(&map, w, whole(w as u32, h as u32), &mut out);
        let at: Vec<(u32, u32)> = out.iter().map(|p| (p.y, p.x)).collect();
        assert_eq!(at, vec![(2, 2), (6, 10)]);
        finder.min_distance = 3.0; // exactly 3 px apart is allowed
        finder.find(&map, w, whole(w as u32, h as u32), &mut out);
        assert_eq!(out.len(), 3);
        // The region limits candidates; the cap limits the count.
        let left = BoundingBox {
            x: 0,
            y: 0,
            width: 6,
            height: 8,
        };
        finder.find(&map, w, left, &mut out);
        assert_eq!(out.len(), 2);
        finder.max_peaks = 1;
        finder.find(&map, w, whole(w as u32, h as u32), &mut out);
        assert_eq!(
            out,
            vec![Peak {
                y: 2,
                x: 2,
                score: 0.9
            }]
        );
    }

    #[test]
    fn a_plateau_gives_one_peak_and_nan_none() {
        let w = 6usize;
        let mut map = vec![0.0f32; w * 4];
        map[w + 2] = 0.6;
        map[w + 3] = 0.6;
        map[3 * w + 5] = f32::NAN;
        let mut out = Vec::new();
        PeakFinder::new(0.5, 2.0, 10).find(&map, w, whole(6, 4), &mut out);
        assert_eq!(
            out,
            vec![Peak {
                y: 1,
                x: 2,
                score: 0.6
            }]
        );
    }
}
