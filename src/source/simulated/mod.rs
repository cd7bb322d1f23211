//! The `simulated` source: a fluorescence time-lapse microscope in software.
//!
//! A [`Scene`] of nuclei that drift, deform, divide and bleach is imaged by a calibrated
//! [`CameraModel`] (Poisson photon noise, gain, offset, read noise, 16-bit quantisation).
//! Everything is seeded: the same seed and frame-interval schedule give the same movie, and
//! frame `n`'s noise depends only on the seed and `n`. The source also hands out its ground
//! truth (the clean frame and the division events) for tests and quality checks.

mod camera_model;
pub mod export;
pub mod random;
mod scene;

pub use camera_model::CameraModel;
pub use scene::{DIVISION_HISTORY, DivisionEvent, Scene, SceneParams};

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;

use self::random::{NormalTable, Rng};
use super::pacer::Pacer;
use super::{Capture, FrameInterval, FrameSource, SourceError};
use crate::events::{BoundingBox, EngineInput, EngineSender, Event};
use crate::frame::{FramePool, FrameSpec, PixelType, Pixels};

/// Settings of the simulated camera (`[source.simulated]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatedConfig {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second (changeable at run time with `SetFrameInterval`).
    pub frame_rate_hz: f64,
    /// Exposure time reported in frame metadata, microseconds.
    pub exposure_us: u32,
    /// Seed of the specimen and the noise.
    pub seed: u64,
    /// The specimen.
    pub scene: SceneParams,
    /// The camera.
    pub camera: CameraModel,
}

impl Default for SimulatedConfig {
    fn default() -> Self {
        Self {
            width: 512,
            height: 512,
            frame_rate_hz: 100.0,
            exposure_us: 10_000,
            seed: 1,
            scene: SceneParams::default(),
            camera: CameraModel::default(),
        }
    }
}

impl SimulatedConfig {
    /// Problems with these settings, as `(key, problem)` pairs relative to the section.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !(16..=8192).contains(&self.width) {
            out.push((
                "width",
                format!("must be 16..=8192 pixels, got {}", self.width),
            ));
        }
        if !(16..=8192).contains(&self.height) {
            out.push((
                "height",
                format!("must be 16..=8192 pixels, got {}", self.height),
            ));
        }
        if !(self.frame_rate_hz > 0.0 && self.frame_rate_hz <= 10_000.0) {
            out.push((
                "frame_rate_hz",
                format!("must be in (0, 10000], got {}", self.frame_rate_hz),
            ));
        }
        let s = &self.scene;
        if s.nucleus_radius_px.is_nan() || s.nucleus_radius_px < 1.0 {
            out.push((
                "scene.nucleus_radius_px",
                format!("must be >= 1, got {}", s.nucleus_radius_px),
            ));
        }
        for (key, v) in [
            ("scene.division_interval_s", s.division_interval_s),
            ("scene.mitosis_duration_s", s.mitosis_duration_s),
            ("scene.bleach_half_life_s", s.bleach_half_life_s),
        ] {
            if v.is_nan() || v <= 0.0 {
                out.push((key, format!("must be > 0, got {v}")));
            }
        }
        for (key, v) in [
            ("scene.nucleus_brightness_e", s.nucleus_brightness_e),
            ("scene.background_e", s.background_e),
            ("scene.motility_px_per_s", s.motility_px_per_s),
            ("scene.drift_px_per_s", s.drift_px_per_s),
            ("camera.read_noise_adu", self.camera.read_noise_adu),
            ("camera.offset_adu", self.camera.offset_adu),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                out.push((key, format!("must be a finite number >= 0, got {v}")));
            }
        }
        if !(self.camera.gain_adu_per_e > 0.0 && self.camera.gain_adu_per_e.is_finite()) {
            out.push((
                "camera.gain_adu_per_e",
                format!("must be > 0, got {}", self.camera.gain_adu_per_e),
            ));
        }
        out
    }
}

/// The simulated camera source.
#[derive(Debug)]
pub struct SimulatedSource {
    config: SimulatedConfig,
    scene: Scene,
    normals: NormalTable,
    expected_e: Vec<f32>,
    pacer: Pacer,
    next_frame_number: u64,
    ground_truth: Option<GroundTruthFeed>,
}

/// Sends the scene's divisions to the rule engine as ground-truth events.
#[derive(Debug)]
struct GroundTruthFeed {
    tx: EngineSender,
    /// Scene time of the last division sent.
    sent_until_s: f64,
    kind: Arc<str>,
    detector: Arc<str>,
    stream: Arc<str>,
}

impl GroundTruthFeed {
    /// Send the divisions newer than the last sent, as seen in the frame arriving `now`.
    fn send_new(&mut self, divisions: &VecDeque<DivisionEvent>, radius: f32, now: Instant) {
        // Divisions are in time order: only the newest few are unsent (no scan on the camera thread).
        let after = self.sent_until_s;
        let unsent = divisions
            .iter()
            .rev()
            .take_while(|d| d.time_s > after)
            .count();
        for d in divisions.iter().skip(divisions.len() - unsent) {
            let half = (2.0 * radius).max(1.0);
            self.tx.send(EngineInput::GroundTruth(Event {
                id: 0,
                kind: self.kind.clone(),
                detector: self.detector.clone(),
                stream: self.stream.clone(),
                frame_number: d.frame_number,
                timestamp_ns: (d.time_s * 1e9) as u64,
                x: d.x,
                y: d.y,
                bbox: BoundingBox {
                    x: (d.x - half).max(0.0) as u32,
                    y: (d.y - half).max(0.0) as u32,
                    width: (2.0 * half) as u32,
                    height: (2.0 * half) as u32,
                },
                score: 1.0,
                values: vec![("mother", d.mother as f64)],
                frame_arrival: now,
                detected: now,
                ground_truth: true,
            }));
            self.sent_until_s = d.time_s;
        }
    }
}

impl SimulatedSource {
    /// A simulator with `config`, paced by `interval`.
    pub fn new(config: SimulatedConfig, interval: Arc<FrameInterval>) -> Result<Self, SourceError> {
        if let Some((key, problem)) = config.problems().into_iter().next() {
            return Err(SourceError::Config(format!(
                "source.simulated.{key}: {problem}"
            )));
        }
        let (w, h) = (config.width as usize, config.height as usize);
        Ok(Self {
            scene: Scene::new(w, h, config.scene, config.seed),
            normals: NormalTable::new(),
            expected_e: vec![0.0; w * h],
            pacer: Pacer::new(interval),
            next_frame_number: 0,
            ground_truth: None,
            config,
        })
    }

    /// Also send every division, as it happens, to the rule engine through `tx` (as
    /// ground-truth events of detector `simulator`, kind `division`, stream `raw`).
    pub fn with_ground_truth(mut self, tx: EngineSender) -> Self {
        self.ground_truth = Some(GroundTruthFeed {
            tx,
            sent_until_s: -1.0,
            kind: crate::rules::GROUND_TRUTH_KIND.into(),
            detector: crate::rules::GROUND_TRUTH_DETECTOR.into(),
            stream: crate::pipeline::RAW.into(),
        });
        self
    }

    /// Ground truth: divisions so far.
    pub fn divisions(&self) -> &VecDeque<DivisionEvent> {
        self.scene.divisions()
    }

    /// Ground truth: the noise-free image of the last frame, in camera counts (ADU).
    pub fn clean_frame_adu(&self) -> impl ExactSizeIterator<Item = f32> + '_ {
        let cam = self.config.camera;
        self.expected_e.iter().map(move |&e| cam.expected_adu(e))
    }

    /// The specimen.
    pub fn scene(&self) -> &Scene {
        &self.scene
    }

    /// Let `dt` of scene time pass (none before the first frame) and render the next
    /// frame's expected image; returns its frame number.
    fn advance(&mut self, dt: std::time::Duration) -> u64 {
        let frame_number = self.next_frame_number;
        self.next_frame_number += 1;
        if frame_number > 0 {
            self.scene.step(dt.as_secs_f64(), frame_number);
        }
        self.scene.render(&mut self.expected_e);
        frame_number
    }

    /// Image the rendered specimen into `out` with the camera's noise.
    fn expose(&self, frame_number: u64, out: &mut [u16]) {
        // Frame n's noise depends only on (seed, n): reproducible even when frames are lost.
        let mut rng = Rng::new(self.config.seed ^ frame_number.wrapping_mul(0xA24B_AED4_963E_E407));
        self.config
            .camera
            .expose(&self.expected_e, &self.normals, &mut rng, out);
    }

    /// The next frame without waiting for the pacer, `dt` of scene time after the previous
    /// one (offline use: exporting movies with their ground truth).
    pub fn next_frame_unpaced(&mut self, dt: std::time::Duration, out: &mut [u16]) -> u64 {
        let frame_number = self.advance(dt);
        self.expose(frame_number, out);
        frame_number
    }
}

impl FrameSource for SimulatedSource {
    fn kind(&self) -> &'static str {
        "simulated"
    }

    fn spec(&self) -> FrameSpec {
        FrameSpec::new(self.config.width, self.config.height, PixelType::U16)
    }

    fn late_frames(&self) -> u64 {
        self.pacer.late()
    }

    fn capture(&mut self, pool: &mut FramePool) -> Result<Capture, SourceError> {
        let Some(dt) = self.pacer.wait() else {
            return Ok(Capture::Idle);
        };
        // The specimen evolves and is rendered whether or not a buffer is free.
        let frame_number = self.advance(dt);
        if let Some(feed) = &mut self.ground_truth {
            let radius = self.config.scene.nucleus_radius_px;
            feed.send_new(self.scene.divisions(), radius, Instant::now());
        }
        let Some(mut writer) = pool.acquire() else {
            return Ok(Capture::Lost { frame_number });
        };
        let (meta, pixels) = writer.parts_mut();
        meta.frame_number = frame_number;
        meta.camera_timestamp_ns = (self.scene.time_s() * 1e9) as u64;
        meta.exposure_us = self.config.exposure_us;
        meta.synthetic = false;
        let Pixels::U16(out) = pixels else {
            return Err(SourceError::Config(
                "simulated source needs a u16 frame pool".into(),
            ));
        };
        self.expose(frame_number, out);
        Ok(Capture::Frame(writer.publish_arrived()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;
    use std::time::Duration;

    fn source(seed: u64) -> SimulatedSource {
        let cfg = SimulatedConfig {
            width: 96,
            height: 64,
            seed,
            ..SimulatedConfig::default()
        };
        SimulatedSource::new(cfg, FrameInterval::new(Duration::from_micros(100))).unwrap()
    }

    fn next(src: &mut SimulatedSource, pool: &mut FramePool) -> Frame {
        loop {
            if let Capture::Frame(f) = src.capture(pool).unwrap() {
                return f;
            }
        }
    }

    #[test]
    fn same_seed_gives_the_same_movie() {
        let (mut a, mut b, mut c) = (source(3), source(3), source(4));
        let spec = a.spec();
        let mut pool = FramePool::new(spec, 4, 4);
        for _ in 0..5 {
            let (fa, fb, fc) = (
                next(&mut a, &mut pool),
                next(&mut b, &mut pool),
                next(&mut c, &mut pool),
            );
            assert_eq!(fa.pixels(), fb.pixels());
            assert_ne!(fa.pixels(), fc.pixels());
            assert_eq!(fa.meta().frame_number, fb.meta().frame_number);
        }
    }

    #[test]
    fn frames_are_noisy_versions_of_the_clean_ground_truth() {
        let mut src = source(5);
        let mut pool = FramePool::new(src.spec(), 2, 2);
        let f = next(&mut src, &mut pool);
        let clean: Vec<f32> = src.clean_frame_adu().collect();
        let cam = CameraModel::default();
        // Normalised residuals (noisy - clean) / expected sigma must be ~N(0, 1).
        let (mut sum, mut sum2) = (0.0f64, 0.0f64);
        for (i, &c) in clean.iter().enumerate() {
            let e = (c - cam.offset_adu) / cam.gain_adu_per_e;
            let sigma = (cam.gain_adu_per_e.powi(2) * e + cam.read_noise_adu.powi(2)).sqrt();
            let z = ((f.pixels().get_f32(i) - c) / sigma) as f64;
            sum += z;
            sum2 += z * z;
        }
        let n = clean.len() as f64;
        assert!((sum / n).abs() < 0.05, "mean residual {}", sum / n);
        assert!(
            (sum2 / n - 1.0).abs() < 0.08,
            "residual variance {}",
            sum2 / n
        );
    }

    #[test]
    fn a_missing_buffer_loses_the_frame_but_numbering_continues() {
        let mut src = source(6);
        let mut pool = FramePool::new(src.spec(), 1, 1);
        let held = next(&mut src, &mut pool);
        let lost = loop {
            match src.capture(&mut pool).unwrap() {
                Capture::Lost { frame_number } => break frame_number,
                Capture::Idle => continue,
                other => panic!("expected a lost frame, got {other:?}"),
            }
        };
        assert_eq!(lost, held.meta().frame_number + 1);
        drop(held);
        assert_eq!(next(&mut src, &mut pool).meta().frame_number, lost + 1);
    }

    #[test]
    fn invalid_settings_name_the_key() {
        let cfg = SimulatedConfig {
            width: 4,
            ..SimulatedConfig::default()
        };
        let err =
            SimulatedSource::new(cfg, FrameInterval::new(Duration::from_millis(1))).unwrap_err();
        assert!(err.to_string().contains("source.simulated.width"), "{err}");
    }
}
