//! `ModelDetector`: a learned detector. The model sees the previous and the current frame and
//! returns a score map; the map's peaks become events ([`super::peaks`]). The package's
//! `config.scopepilot.detector` gives the calibrated threshold and spacing, which the stage's
//! parameters may override.

use std::sync::Arc;

use super::peaks::{Peak, PeakFinder};
use super::{DetectParams, Detector, Found, MAX_EVENTS_PER_FRAME, MODEL_CHANNELS};
use crate::events::BoundingBox;
use crate::frame::Frame;
use crate::inference::{InferenceConfig, LoadedModel};
use crate::pipeline::model_slot::{ModelSlot, load_stage_model};
use crate::pipeline::stage::StageError;

/// The learned detector.
pub struct ModelDetector {
    model: LoadedModel,
    slot: Arc<ModelSlot>,
    params: DetectParams,
    finder: PeakFinder,
    previous: Option<Frame>,
    planes: Vec<f32>,
    score: Vec<f32>,
    peaks: Vec<Peak>,
}

impl ModelDetector {
    /// Load the model of `params` (with its self-test).
    pub fn open(params: &DetectParams, inference: &InferenceConfig) -> Result<Self, StageError> {
        let path = params
            .model
            .as_ref()
            .ok_or_else(|| StageError("the model detector needs a model package".into()))?;
        let (model, slot) = load_stage_model(
            path,
            params.tile,
            inference,
            "detect",
            MODEL_CHANNELS,
            "previous, current",
        )
        .map_err(|e| StageError(e.to_string()))?;
        let defaults = model.package().detector.clone();
        let threshold = params
            .threshold
            .or(defaults.as_ref().map(|d| d.threshold))
            .ok_or_else(|| StageError(format!("{}: no threshold", path.display())))?;
        let min_distance = params
            .min_distance_px
            .or(defaults.as_ref().map(|d| d.min_distance_px))
            .unwrap_or(12.0);
        Ok(Self {
            model,
            slot,
            params: params.clone(),
            finder: PeakFinder::new(threshold, min_distance, MAX_EVENTS_PER_FRAME),
            previous: None,
            planes: Vec::new(),
            score: Vec::new(),
            peaks: Vec::new(),
        })
    }
}

impl Detector for ModelDetector {
    fn model_slot(&self) -> Option<Arc<ModelSlot>> {
        Some(self.slot.clone())
    }

    fn detect(&mut self, frame: &Frame, found: &mut Vec<Found>) -> Result<f32, StageError> {
        self.slot.update(&mut self.model, "detect");
        let previous = self.previous.replace(frame.clone());
        let Some(previous) = previous.filter(|p| p.spec() == frame.spec()) else {
            self.score.clear();
            return Ok(0.0);
        };
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        let n = w * h;
        self.score.resize(n, 0.0);
        let fill = |planes: &mut [f32]| {
            previous.pixels().convert_into_f32(&mut planes[..n]);
            frame.pixels().convert_into_f32(&mut planes[n..2 * n]);
        };
        self.model
            .process_filled(h, w, fill, &mut self.planes, &mut self.score)
            .map_err(|e| StageError(format!("frame {}: {e}", frame.meta().frame_number)))?;
        let region = self.params.region(frame.width(), frame.height());
        let mut signal = 0.0f32;
        for y in region.y as usize..(region.y + region.height) as usize {
            let row =
                &self.score[y * w + region.x as usize..y * w + (region.x + region.width) as usize];
            signal = row.iter().fold(signal, |m, &v| m.max(v));
        }
        self.finder.find(&self.score, w, region, &mut self.peaks);
        let half = self.params.box_px / 2;
        for p in &self.peaks {
            let (x0, y0) = (p.x.saturating_sub(half), p.y.saturating_sub(half));
            found.push(Found {
                x: p.x as f32,
                y: p.y as f32,
                bbox: BoundingBox {
                    x: x0,
                    y: y0,
                    width: self.params.box_px,
                    height: self.params.box_px,
                }
                .clipped(frame.width(), frame.height()),
                score: p.score,
                values: Vec::new(),
            });
        }
        Ok(signal)
    }
}
