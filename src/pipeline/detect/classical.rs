//! Detectors that need no model: the mean in a region crossing a threshold, frame-to-frame
//! activity, and the number of objects changing. Each works in the frame's own units (ADU).

use super::{DetectParams, Detector, Direction, Found};
use crate::events::BoundingBox;
use crate::frame::Frame;
use crate::pipeline::stage::StageError;

fn centre(b: BoundingBox) -> (f32, f32) {
    (
        b.x as f32 + b.width as f32 / 2.0,
        b.y as f32 + b.height as f32 / 2.0,
    )
}

/// Calls `f(index)` for every pixel index of `region` in a `w`-wide frame, row by row.
fn for_each_index(region: BoundingBox, w: usize, mut f: impl FnMut(usize)) {
    for y in region.y as usize..(region.y + region.height) as usize {
        let row = y * w;
        (row + region.x as usize..row + (region.x + region.width) as usize).for_each(&mut f);
    }
}

/// Remembers whether a signal is past its threshold; reports the crossings into that state.
#[derive(Debug, Clone, Copy)]
struct Crossing {
    threshold: f32,
    direction: Direction,
    past: bool,
}

impl Crossing {
    /// Whether `signal` just crossed into the past-threshold state.
    fn crossed(&mut self, signal: f32) -> bool {
        let past = match self.direction {
            Direction::Above => signal >= self.threshold,
            Direction::Below => signal <= self.threshold,
        };
        let crossed = past && !self.past;
        self.past = past;
        crossed
    }
}

/// `roi_mean`: an event when the mean of the region crosses the threshold.
pub struct RoiMean {
    params: DetectParams,
    crossing: Crossing,
}

impl RoiMean {
    /// A detector with checked `params`.
    pub fn new(params: &DetectParams) -> Self {
        Self {
            crossing: Crossing {
                threshold: params.threshold.unwrap_or(0.0),
                direction: params.direction,
                past: false,
            },
            params: params.clone(),
        }
    }
}

impl Detector for RoiMean {
    fn detect(&mut self, frame: &Frame, found: &mut Vec<Found>) -> Result<f32, StageError> {
        let region = self.params.region(frame.width(), frame.height());
        let pixels = frame.pixels();
        let mut sum = 0.0f64;
        for_each_index(region, frame.width() as usize, |i| {
            sum += pixels.get_f32(i) as f64
        });
        let n = (region.width as f64 * region.height as f64).max(1.0);
        let mean = (sum / n) as f32;
        if self.crossing.crossed(mean) {
            let (x, y) = centre(region);
            found.push(Found {
                x,
                y,
                bbox: region,
                score: mean,
                values: vec![("threshold", self.crossing.threshold as f64)],
            });
        }
        Ok(mean)
    }
}

/// `activity`: an event when the RMS difference to the previous frame in the region crosses
/// the threshold; the event sits at the centre of mass of the squared difference.
pub struct Activity {
    params: DetectParams,
    crossing: Crossing,
    previous: Vec<f32>,
    previous_size: (u32, u32),
}

impl Activity {
    /// A detector with checked `params`.
    pub fn new(params: &DetectParams) -> Self {
        Self {
            crossing: Crossing {
                threshold: params.threshold.unwrap_or(0.0),
                direction: Direction::Above,
                past: false,
            },
            params: params.clone(),
            previous: Vec::new(),
            previous_size: (0, 0),
        }
    }
}

impl Detector for Activity {
    fn detect(&mut self, frame: &Frame, found: &mut Vec<Found>) -> Result<f32, StageError> {
        let (w, h) = (frame.width(), frame.height());
        let region = self.params.region(w, h);
        let pixels = frame.pixels();
        let first = self.previous_size != (w, h);
        self.previous.resize(w as usize * h as usize, 0.0);
        let (mut energy, mut mx, mut my) = (0.0f64, 0.0f64, 0.0f64);
        for_each_index(region, w as usize, |i| {
            let v = pixels.get_f32(i);
            let d = (v - self.previous[i]) as f64;
            let e = d * d;
            energy += e;
            mx += e * (i % w as usize) as f64;
            my += e * (i / w as usize) as f64;
            self.previous[i] = v;
        });
        self.previous_size = (w, h);
        if first {
            return Ok(0.0);
        }
        let n = (region.width as f64 * region.height as f64).max(1.0);
        let rms = (energy / n).sqrt() as f32;
        if self.crossing.crossed(rms) {
            let (x, y) = if energy > 0.0 {
                ((mx / energy) as f32, (my / energy) as f32)
            } else {
                centre(region)
            };
            found.push(Found {
                x,
                y,
                bbox: region,
                score: rms,
                values: vec![("threshold", self.crossing.threshold as f64)],
            });
        }
        Ok(rms)
    }
}

/// `object_count`: pixels above the threshold, grouped 8-connected; groups of at least
/// `min_area_px` are objects. An event whenever the count differs from the previous frame's.
pub struct ObjectCount {
    params: DetectParams,
    previous: Option<u32>,
    /// Pixels already assigned to an object (or below threshold); reused across frames.
    visited: Vec<bool>,
    stack: Vec<u32>,
}

impl ObjectCount {
    /// A detector with checked `params`.
    pub fn new(params: &DetectParams) -> Self {
        Self {
            params: params.clone(),
            previous: None,
            visited: Vec::new(),
            stack: Vec::new(),
        }
    }

    /// Objects in `region` of `frame`.
    pub fn count(&mut self, frame: &Frame, region: BoundingBox) -> u32 {
        let w = frame.width() as usize;
        let pixels = frame.pixels();
        let threshold = self.params.threshold.unwrap_or(0.0);
        self.visited.clear();
        self.visited.resize(w * frame.height() as usize, false);
        let inside = |x: i64, y: i64| {
            x >= region.x as i64
                && y >= region.y as i64
                && x < (region.x + region.width) as i64
                && y < (region.y + region.height) as i64
        };
        let mut objects = 0;
        let rows = region.y as usize..(region.y + region.height) as usize;
        let cols = region.x as usize..(region.x + region.width) as usize;
        for seed in rows.flat_map(|y| cols.clone().map(move |x| y * w + x)) {
            if self.visited[seed] || pixels.get_f32(seed) <= threshold {
                continue;
            }
            self.visited[seed] = true;
            self.stack.clear();
            self.stack.push(seed as u32);
            let mut area = 0u32;
            while let Some(i) = self.stack.pop() {
                area += 1;
                let (x, y) = ((i as usize % w) as i64, (i as usize / w) as i64);
                for (dx, dy) in [
                    (-1, -1),
                    (0, -1),
                    (1, -1),
                    (-1, 0),
                    (1, 0),
                    (-1, 1),
                    (0, 1),
                    (1, 1),
                ] {
                    let (nx, ny) = (x + dx, y + dy);
                    if !inside(nx, ny) {
                        continue;
                    }
                    let j = ny as usize * w + nx as usize;
                    if !self.visited[j] && pixels.get_f32(j) > threshold {
                        self.visited[j] = true;
                        self.stack.push(j as u32);
                    }
                }
            }
            if area >= self.params.min_area_px {
                objects += 1;
            }
        }
        objects
    }
}

impl Detector for ObjectCount {
    fn detect(&mut self, frame: &Frame, found: &mut Vec<Found>) -> Result<f32, StageError> {
        let region = self.params.region(frame.width(), frame.height());
        let count = self.count(frame, region);
        if let Some(before) = self.previous
            && before != count
        {
            let (x, y) = centre(region);
            found.push(Found {
                x,
                y,
                bbox: region,
                score: count as f32,
                values: vec![
                    ("previous_count", before as f64),
                    ("delta", count as f64 - before as f64),
                ],
            });
        }
        self.previous = Some(count);
        Ok(count as f32)
    }
}
