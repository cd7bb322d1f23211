//! `InterpolateStage`: content-aware frame interpolation (CAFI), temporal super-resolution in
//! the stream. The stage holds the previous frame; when frame t+1 arrives it emits the frames
//! generated between t and t+1 (`factor - 1` of them), then t+1 itself, unchanged. So a sample
//! imaged at half the frame rate (half the light) is seen at the full rate.
//!
//! - Generated frames are flagged `synthetic`, with timestamps interpolated between their
//!   neighbours and the frame number of the measured frame before them; every output (gRPC,
//!   previews, recording) carries the flag, and a recording never writes them into `raw`.
//! - Order is preserved. When frames are missing upstream (a frame-number step larger than
//!   `max_gap`), nothing is generated across the gap: the interval is skipped and counted
//!   (`StageStats::gaps_skipped`). Steps up to `max_gap` are filled at the output rate.
//! - Methods behind one interface ([`Interpolator`]): `duplicate` (the nearer measured frame),
//!   `linear` (blend) and `model`, a learned two-frame model from a package whose input has
//!   three channels `frame0`, `frame1`, `tau` (the fractional time of the wanted frame), so any
//!   integer factor works with one model.
//! - Output frames have the input's pixel type (generated u8 / u16 values are rounded and
//!   clamped), so raw and denoised streams both work and a stream never mixes types.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use super::model_slot::{ModelSlot, load_stage_model};
use super::stage::{Emitter, Stage, StageError, acquire_slot};
use crate::frame::{Frame, FrameMeta, FramePool, Pixels};
use crate::inference::{InferenceConfig, InferenceError, LoadedModel};

/// Input channels of a learned interpolation model: `frame0`, `frame1`, `tau`.
pub const MODEL_CHANNELS: usize = 3;

/// Largest interpolation factor.
pub const MAX_FACTOR: u32 = 16;

/// How the frames in between are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InterpolationMethod {
    /// The nearer measured frame (the earlier one at the midpoint): the no-op baseline.
    Duplicate,
    /// `(1 - tau) * frame0 + tau * frame1`.
    Linear,
    /// A learned two-frame model (`params.model`).
    Model,
}

impl InterpolationMethod {
    /// Name used in config.
    pub fn name(self) -> &'static str {
        match self {
            InterpolationMethod::Duplicate => "duplicate",
            InterpolationMethod::Linear => "linear",
            InterpolationMethod::Model => "model",
        }
    }
}

/// Parameters of the `interpolate` stage
/// (`params = { model = "models/interpolate-fast", factor = 2 }` or `{ method = "linear" }`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterpolateParams {
    /// `duplicate`, `linear` or `model` (default: `model` when `model` is given).
    #[serde(default)]
    pub method: Option<InterpolationMethod>,
    /// Model package of a learned interpolator (relative paths: see `Config::resolve_paths`).
    #[serde(default)]
    pub model: Option<PathBuf>,
    /// Output frames per input interval: `factor - 1` generated frames between two measured ones.
    #[serde(default = "default_factor")]
    pub factor: u32,
    /// Largest frame-number step interpolated across (1 = consecutive frames only). A larger
    /// step is a gap: skipped and counted.
    #[serde(default = "default_max_gap")]
    pub max_gap: u64,
    /// Output tile side for the model (0 = the model's choice).
    #[serde(default)]
    pub tile: usize,
    /// Output buffers kept by the stage.
    #[serde(default = "default_pool")]
    pub pool_frames: usize,
}

fn default_factor() -> u32 {
    2
}

fn default_max_gap() -> u64 {
    1
}

fn default_pool() -> usize {
    16
}

impl InterpolateParams {
    /// The method these parameters select, or why they select none.
    pub fn resolved_method(&self) -> Result<InterpolationMethod, (&'static str, String)> {
        match (self.method, &self.model) {
            (Some(InterpolationMethod::Model), None) => Err((
                "model",
                "method \"model\" needs a model package (params.model)".into(),
            )),
            (None | Some(InterpolationMethod::Model), Some(_)) => Ok(InterpolationMethod::Model),
            (Some(m), Some(_)) => Err((
                "model",
                format!(
                    "a model is only used with method \"model\", not {:?}",
                    m.name()
                ),
            )),
            (Some(m), None) => Ok(m),
            (None, None) => Err((
                "method",
                "give a learned model (params.model) or params.method = \"linear\" or \"duplicate\""
                    .into(),
            )),
        }
    }

    /// Problems with these parameters, as `(key, problem)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Err(p) = self.resolved_method() {
            out.push(p);
        }
        if !(2..=MAX_FACTOR).contains(&self.factor) {
            out.push((
                "factor",
                format!("must be 2..={MAX_FACTOR}, got {}", self.factor),
            ));
        }
        if !(1..=16).contains(&self.max_gap) {
            out.push(("max_gap", format!("must be 1..=16, got {}", self.max_gap)));
        }
        if self.pool_frames < 2 {
            out.push((
                "pool_frames",
                format!("must be at least 2, got {}", self.pool_frames),
            ));
        }
        if let Some(model) = &self.model
            && let Err(e) = crate::inference::ModelPackage::open(model)
        {
            out.push(("model", e.to_string()));
        }
        out
    }
}

/// Makes the frame at fractional time `tau` (0 < tau < 1) between two frames of the same shape.
pub trait Interpolator: Send {
    /// Write the frame at `tau` between `frame0` and `frame1` (`h` x `w`) into `out`.
    fn interpolate(
        &mut self,
        frame0: &Pixels,
        frame1: &Pixels,
        tau: f32,
        h: usize,
        w: usize,
        out: &mut [f32],
    ) -> Result<(), StageError>;
}

/// The nearer measured frame.
pub struct Duplicate;

impl Interpolator for Duplicate {
    fn interpolate(
        &mut self,
        frame0: &Pixels,
        frame1: &Pixels,
        tau: f32,
        _h: usize,
        _w: usize,
        out: &mut [f32],
    ) -> Result<(), StageError> {
        let nearer = if tau <= 0.5 { frame0 } else { frame1 };
        nearer.convert_into_f32(out);
        Ok(())
    }
}

/// The linear blend of the two frames.
#[derive(Default)]
pub struct Linear {
    frame1: Vec<f32>,
}

impl Interpolator for Linear {
    fn interpolate(
        &mut self,
        frame0: &Pixels,
        frame1: &Pixels,
        tau: f32,
        _h: usize,
        _w: usize,
        out: &mut [f32],
    ) -> Result<(), StageError> {
        frame0.convert_into_f32(out);
        frame1.copy_to_f32(&mut self.frame1);
        for (o, &b) in out.iter_mut().zip(&self.frame1) {
            *o += tau * (b - *o);
        }
        Ok(())
    }
}

/// A learned two-frame model, replaceable at run time through its [`ModelSlot`].
pub struct LearnedInterpolator {
    model: LoadedModel,
    slot: Arc<ModelSlot>,
    planes: Vec<f32>,
}

impl LearnedInterpolator {
    /// Load the package (with its self-test) and check it takes `frame0`, `frame1`, `tau`.
    pub fn open(
        path: &std::path::Path,
        tile: usize,
        inference: &InferenceConfig,
    ) -> Result<Self, InferenceError> {
        let (model, slot) = load_stage_model(
            path,
            tile,
            inference,
            "interpolate",
            MODEL_CHANNELS,
            "frame0, frame1, tau",
        )?;
        Ok(Self {
            slot,
            model,
            planes: Vec::new(),
        })
    }
}

impl Interpolator for LearnedInterpolator {
    fn interpolate(
        &mut self,
        frame0: &Pixels,
        frame1: &Pixels,
        tau: f32,
        h: usize,
        w: usize,
        out: &mut [f32],
    ) -> Result<(), StageError> {
        self.slot.update(&mut self.model, "interpolate");
        let n = h * w;
        let fill = |planes: &mut [f32]| {
            frame0.convert_into_f32(&mut planes[..n]);
            frame1.convert_into_f32(&mut planes[n..2 * n]);
            planes[2 * n..3 * n].fill(tau);
        };
        self.model
            .process_filled(h, w, fill, &mut self.planes, out)
            .map_err(|e| StageError(e.to_string()))
    }
}

/// The interpolation stage.
pub struct InterpolateStage {
    interpolator: Box<dyn Interpolator>,
    slot: Option<Arc<ModelSlot>>,
    factor: u32,
    max_gap: u64,
    pool_frames: usize,
    pool: Option<FramePool>,
    previous: Option<Frame>,
    generated: Vec<f32>,
}

impl InterpolateStage {
    /// Build the stage (loading and self-testing the model of method `model`).
    pub fn new(
        params: &InterpolateParams,
        inference: &InferenceConfig,
    ) -> Result<Self, InferenceError> {
        let method = params
            .resolved_method()
            .map_err(|(_, problem)| InferenceError::Model {
                path: String::new(),
                problem,
            })?;
        let (interpolator, slot): (Box<dyn Interpolator>, _) = match (method, &params.model) {
            (InterpolationMethod::Model, Some(path)) => {
                let learned = LearnedInterpolator::open(path, params.tile, inference)?;
                let slot = learned.slot.clone();
                (Box::new(learned), Some(slot))
            }
            (InterpolationMethod::Linear, _) => (Box::new(Linear::default()), None),
            _ => (Box::new(Duplicate), None),
        };
        Ok(Self {
            interpolator,
            slot,
            factor: params.factor,
            max_gap: params.max_gap,
            pool_frames: params.pool_frames,
            pool: None,
            previous: None,
            generated: Vec::new(),
        })
    }

    /// Generate and emit the frames between `previous` and `next`, `step` frame numbers apart.
    fn fill_interval(
        &mut self,
        previous: &Frame,
        next: &Frame,
        step: u64,
        out: &mut Emitter<'_>,
    ) -> Result<(), StageError> {
        let spec = next.spec();
        let (h, w) = (spec.height as usize, spec.width as usize);
        let parts = self.factor as u64 * step;
        self.generated.resize(h * w, 0.0);
        for k in 1..parts {
            let tau = k as f64 / parts as f64;
            self.interpolator.interpolate(
                previous.pixels(),
                next.pixels(),
                tau as f32,
                h,
                w,
                &mut self.generated,
            )?;
            let mut slot = acquire_slot(
                &mut self.pool,
                spec,
                self.pool_frames,
                previous.meta().frame_number,
            )?;
            let (meta, pixels) = slot.parts_mut();
            *meta = synthetic_meta(previous.meta(), next.meta(), tau);
            pixels.store_f32(&self.generated);
            out.emit(slot.publish());
        }
        Ok(())
    }
}

/// Metadata of the frame at `tau` between `a` and `b`: `a`'s number and exposure, the
/// interpolated camera timestamp, `b`'s arrival (it is made when `b` arrives), synthetic.
fn synthetic_meta(a: &FrameMeta, b: &FrameMeta, tau: f64) -> FrameMeta {
    let (t0, t1) = (a.camera_timestamp_ns as f64, b.camera_timestamp_ns as f64);
    FrameMeta {
        frame_number: a.frame_number,
        camera_timestamp_ns: (t0 + (t1 - t0) * tau).round().max(0.0) as u64,
        arrival: b.arrival,
        exposure_us: a.exposure_us,
        synthetic: true,
    }
}

impl Stage for InterpolateStage {
    fn kind(&self) -> &'static str {
        "interpolate"
    }

    fn model_slot(&self) -> Option<Arc<ModelSlot>> {
        self.slot.clone()
    }

    fn process(&mut self, input: &Frame, out: &mut Emitter<'_>) -> Result<(), StageError> {
        let previous = self.previous.replace(input.clone());
        let mut result = Ok(());
        if let Some(previous) = previous
            && previous.spec() == input.spec()
            && !previous.meta().synthetic
            && !input.meta().synthetic
        {
            let (a, b) = (previous.meta().frame_number, input.meta().frame_number);
            match b.checked_sub(a) {
                Some(step) if (1..=self.max_gap).contains(&step) => {
                    result = self.fill_interval(&previous, input, step, out);
                }
                Some(step) if step > self.max_gap => out.count_gap_skipped(),
                // Same number again or a restart of the numbering: nothing in between.
                _ => {}
            }
        }
        // The measured frame leaves after the frames before it, even if generating them failed.
        out.emit(input.clone());
        result.map_err(|e| {
            StageError(format!(
                "frames before {} not generated: {e}",
                input.meta().frame_number
            ))
        })
    }
}

#[cfg(test)]
mod tests;
