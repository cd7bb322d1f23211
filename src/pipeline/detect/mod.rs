//! `DetectStage`: looks at every measured frame of its input stream with one detector and
//! sends the result (events, plus a frame-level signal for hysteresis rules) to the rule
//! engine. Frames pass through unchanged (same buffer), so other stages can follow it.
//!
//! Detectors ([`Detector`]):
//! - `model`: a learned score map (ONNX; the package's inputs are the previous and the
//!   current frame); its peaks at or above `threshold`, at least `min_distance_px` apart,
//!   become events with positions ([`peaks`]).
//! - `roi_mean`: the mean intensity in `roi` crossing `threshold` (`direction` above/below).
//! - `activity`: frame-to-frame change in `roi` (RMS difference, ADU) crossing `threshold`.
//! - `object_count`: objects (pixels above `threshold`, 8-connected, at least `min_area_px`)
//!   in `roi`; an event whenever the count changes.
//!
//! Synthetic (interpolated) frames pass through without detection: events only come from
//! measured frames.

mod classical;
mod learned;
pub mod peaks;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;

pub use self::classical::{Activity, ObjectCount, RoiMean};
pub use self::learned::ModelDetector;
use super::model_slot::ModelSlot;
use super::stage::{Emitter, Stage, StageError};
use crate::events::{BoundingBox, Detection, EngineInput, EngineSender, Event};
use crate::frame::Frame;
use crate::inference::{InferenceConfig, ModelPackage};

/// Input channels of a detection model: the previous and the current frame.
pub const MODEL_CHANNELS: usize = 2;

/// Most events one frame may produce (the strongest are kept).
pub const MAX_EVENTS_PER_FRAME: usize = 256;

/// Which detector a `detect` stage runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    /// A learned score-map model.
    Model,
    /// Mean intensity in a region crossing a threshold.
    RoiMean,
    /// Frame-to-frame difference energy crossing a threshold.
    Activity,
    /// Change of the number of objects (threshold + connected components).
    ObjectCount,
}

impl DetectorKind {
    /// Name used in config.
    pub fn name(self) -> &'static str {
        match self {
            DetectorKind::Model => "model",
            DetectorKind::RoiMean => "roi_mean",
            DetectorKind::Activity => "activity",
            DetectorKind::ObjectCount => "object_count",
        }
    }
}

/// Which way a `roi_mean` threshold is crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// An event when the mean rises to or above the threshold.
    #[default]
    Above,
    /// An event when the mean falls to or below the threshold.
    Below,
}

/// Parameters of the `detect` stage, e.g.
/// `params = { detector = "model", model = "models/detect-divisions" }` or
/// `params = { detector = "roi_mean", roi = [0, 0, 64, 64], threshold = 34000 }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectParams {
    /// The detector.
    pub detector: DetectorKind,
    /// Kind of the events (default: the model's own, else the detector's name).
    #[serde(default)]
    pub event_kind: Option<String>,
    /// Region looked at, `[x, y, width, height]` in pixels (default: the whole frame).
    #[serde(default)]
    pub roi: Option<[u32; 4]>,
    /// Threshold: model score (default: the model's own), mean ADU (`roi_mean`), RMS
    /// difference ADU (`activity`), pixel ADU (`object_count`).
    #[serde(default)]
    pub threshold: Option<f32>,
    /// `roi_mean`: which crossing is an event.
    #[serde(default)]
    pub direction: Direction,
    /// `model`: the package (relative paths: see `Config::resolve_paths`).
    #[serde(default)]
    pub model: Option<PathBuf>,
    /// `model`: tile side (0 = the model's choice).
    #[serde(default)]
    pub tile: usize,
    /// `model`: events of one frame are at least this far apart (default: the model's own).
    #[serde(default)]
    pub min_distance_px: Option<f32>,
    /// `model`: side of the box reported around each event, pixels.
    #[serde(default = "default_box")]
    pub box_px: u32,
    /// `object_count`: smallest object counted, pixels.
    #[serde(default = "default_min_area")]
    pub min_area_px: u32,
}

fn default_box() -> u32 {
    32
}

fn default_min_area() -> u32 {
    20
}

impl DetectParams {
    /// Problems with these parameters, as `(key, problem)` (the model is opened, not loaded).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let model_only = [
            ("model", self.model.is_some()),
            ("tile", self.tile != 0),
            ("min_distance_px", self.min_distance_px.is_some()),
        ];
        match self.detector {
            DetectorKind::Model => match &self.model {
                None => out.push(("model", "the model detector needs a model package".into())),
                Some(path) => match ModelPackage::open(path) {
                    Err(e) => out.push(("model", e.to_string())),
                    Ok(p) if p.input_channels.len() != MODEL_CHANNELS => out.push((
                        "model",
                        format!(
                            "{:?} takes {} input channel(s) {:?}; a detection model takes {MODEL_CHANNELS} (previous, current)",
                            p.name,
                            p.input_channels.len(),
                            p.input_channels
                        ),
                    )),
                    Ok(p) if p.detector.is_none() && self.threshold.is_none() => out.push((
                        "threshold",
                        format!("{:?} has no calibrated threshold; give one", p.name),
                    )),
                    Ok(_) => {}
                },
            },
            other => {
                for (key, given) in model_only {
                    if given {
                        out.push((key, format!("only the model detector takes {key}, not {}", other.name())));
                    }
                }
                if self.threshold.is_none() {
                    out.push(("threshold", format!("the {} detector needs a threshold", other.name())));
                }
            }
        }
        if let Some(t) = self.threshold
            && !t.is_finite()
        {
            out.push(("threshold", format!("must be a finite number, got {t}")));
        }
        if let Some(d) = self.min_distance_px
            && !(d >= 1.0 && d.is_finite())
        {
            out.push(("min_distance_px", format!("must be >= 1, got {d}")));
        }
        if let Some([_, _, w, h]) = self.roi
            && (w == 0 || h == 0)
        {
            out.push((
                "roi",
                "width and height must be at least 1 ([x, y, width, height])".into(),
            ));
        }
        if self.min_area_px == 0 {
            out.push(("min_area_px", "must be at least 1".into()));
        }
        if let Some(k) = &self.event_kind
            && !crate::rules::is_name(k)
        {
            out.push((
                "event_kind",
                format!("{k:?} must be non-empty letters, digits, '_' or '-'"),
            ));
        }
        out
    }

    /// The kind of the events this detector produces.
    pub fn event_kind(&self) -> String {
        if let Some(k) = &self.event_kind {
            return k.clone();
        }
        if self.detector == DetectorKind::Model
            && let Some(d) = self
                .model
                .as_ref()
                .and_then(|p| ModelPackage::open(p).ok())
                .and_then(|p| p.detector)
        {
            return d.event_kind;
        }
        self.detector.name().to_string()
    }

    /// The region of a `width` x `height` frame the detector looks at.
    pub fn region(&self, width: u32, height: u32) -> BoundingBox {
        match self.roi {
            Some([x, y, w, h]) => BoundingBox {
                x,
                y,
                width: w,
                height: h,
            }
            .clipped(width, height),
            None => BoundingBox {
                x: 0,
                y: 0,
                width,
                height,
            },
        }
    }
}

/// Something a detector found in a frame, before it becomes an [`Event`].
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// Centre, pixels.
    pub x: f32,
    /// Centre, pixels.
    pub y: f32,
    /// Extent.
    pub bbox: BoundingBox,
    /// Score.
    pub score: f32,
    /// Detector-specific numbers.
    pub values: Vec<(&'static str, f64)>,
}

/// A detector: looks at one frame, reports what it found and the frame-level signal.
pub trait Detector: Send {
    /// Examine `frame`, pushing what it found to `found` (cleared by the caller); returns
    /// the frame-level signal.
    fn detect(&mut self, frame: &Frame, found: &mut Vec<Found>) -> Result<f32, StageError>;

    /// The slot of a replaceable model (none by default).
    fn model_slot(&self) -> Option<Arc<ModelSlot>> {
        None
    }
}

/// The detect stage.
pub struct DetectStage {
    detector: Box<dyn Detector>,
    name: Arc<str>,
    stream: Arc<str>,
    kind: Arc<str>,
    events: Option<EngineSender>,
    found: Vec<Found>,
}

impl DetectStage {
    /// A stage named `name` reading `stream`, sending its detections to `events` (none: the
    /// stage only counts, e.g. in benchmarks).
    pub fn new(
        name: &str,
        stream: &str,
        params: &DetectParams,
        inference: &InferenceConfig,
        events: Option<EngineSender>,
    ) -> Result<Self, StageError> {
        let detector: Box<dyn Detector> = match params.detector {
            DetectorKind::Model => Box::new(ModelDetector::open(params, inference)?),
            DetectorKind::RoiMean => Box::new(RoiMean::new(params)),
            DetectorKind::Activity => Box::new(Activity::new(params)),
            DetectorKind::ObjectCount => Box::new(ObjectCount::new(params)),
        };
        Ok(Self {
            detector,
            name: name.into(),
            stream: stream.into(),
            kind: params.event_kind().into(),
            events,
            found: Vec::new(),
        })
    }

    /// Run the detector on `frame` and build the detection (also used offline).
    pub fn examine(&mut self, frame: &Frame) -> Result<Detection, StageError> {
        self.found.clear();
        let signal = self.detector.detect(frame, &mut self.found)?;
        let detected = Instant::now();
        let meta = frame.meta();
        let events = self
            .found
            .drain(..)
            .map(|f| Event {
                id: 0,
                kind: self.kind.clone(),
                detector: self.name.clone(),
                stream: self.stream.clone(),
                frame_number: meta.frame_number,
                timestamp_ns: meta.camera_timestamp_ns,
                x: f.x,
                y: f.y,
                bbox: f.bbox,
                score: f.score,
                values: f.values,
                frame_arrival: meta.arrival,
                detected,
                ground_truth: false,
            })
            .collect();
        Ok(Detection {
            detector: self.name.clone(),
            frame_number: meta.frame_number,
            signal,
            events,
            frame_arrival: meta.arrival,
            detected,
        })
    }
}

impl Stage for DetectStage {
    fn kind(&self) -> &'static str {
        "detect"
    }

    fn model_slot(&self) -> Option<Arc<ModelSlot>> {
        self.detector.model_slot()
    }

    fn process(&mut self, input: &Frame, out: &mut Emitter<'_>) -> Result<(), StageError> {
        if input.meta().synthetic {
            out.emit(input.clone());
            return Ok(());
        }
        let result = self.examine(input);
        out.emit(input.clone());
        let detection = result?;
        if let Some(tx) = &self.events {
            tx.send(EngineInput::Detection(detection));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
