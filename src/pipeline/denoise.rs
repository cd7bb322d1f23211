//! `DenoiseStage`: runs an image-to-image model (e.g. a CARE / Noise2Void denoiser from a
//! bioimage.io package) on every frame through ONNX Runtime, with the package's processing and
//! tiling. Output is f32 from the stage's own frame pool; a failed inference skips the frame
//! (counted) and the stage goes on. The model can be replaced while running through its
//! [`ModelSlot`] (the `Models.LoadModel` RPC); the switch happens between two frames.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use super::stage::{Emitter, F32Output, Stage, StageError};
use crate::frame::{Frame, FramePool};
use crate::inference::{InferenceConfig, InferenceError, LoadedModel, ModelPackage, ModelSummary};

/// Parameters of the `denoise` stage (`params = { model = "models/...", tile = 0 }`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenoiseParams {
    /// Model package: a bioimage.io `rdf.yaml`, a `model.toml`, a folder holding one, or a
    /// bare `.onnx` (relative paths: see `Config::resolve_paths`).
    pub model: PathBuf,
    /// Output tile side (0 = the model's preferred tile, or automatic).
    #[serde(default)]
    pub tile: usize,
    /// Output buffers kept by the stage.
    #[serde(default = "default_pool")]
    pub pool_frames: usize,
}

fn default_pool() -> usize {
    16
}

impl DenoiseParams {
    /// Problems with these parameters, as `(key, problem)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.pool_frames < 2 {
            out.push((
                "pool_frames",
                format!("must be at least 2, got {}", self.pool_frames),
            ));
        }
        if let Err(e) = ModelPackage::open(&self.model) {
            out.push(("model", e.to_string()));
        }
        out
    }
}

/// The model of a running stage, seen from outside: what it is, and a model waiting to
/// replace it.
#[derive(Debug)]
pub struct ModelSlot {
    current: Mutex<Arc<ModelSummary>>,
    pending: Mutex<Option<LoadedModel>>,
    has_pending: AtomicBool,
}

impl ModelSlot {
    fn new(summary: ModelSummary) -> Self {
        Self {
            current: Mutex::new(Arc::new(summary)),
            pending: Mutex::new(None),
            has_pending: AtomicBool::new(false),
        }
    }

    /// The model in use.
    pub fn current(&self) -> Arc<ModelSummary> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Hand over a loaded model; the stage switches to it before its next frame.
    pub fn replace(&self, model: LoadedModel) {
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = Some(model);
        self.has_pending.store(true, Ordering::Release);
    }

    /// The waiting model, if any (checked by the stage once per frame: one atomic load).
    fn take(&self) -> Option<LoadedModel> {
        if !self.has_pending.swap(false, Ordering::Acquire) {
            return None;
        }
        let model = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()?;
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(model.summary());
        Some(model)
    }
}

/// The denoising stage.
pub struct DenoiseStage {
    model: LoadedModel,
    slot: Arc<ModelSlot>,
    pool_frames: usize,
    pool: Option<FramePool>,
    input: Vec<f32>,
}

impl DenoiseStage {
    /// Load the model (with its self-test) and make the stage.
    pub fn new(
        params: &DenoiseParams,
        inference: &InferenceConfig,
    ) -> Result<Self, InferenceError> {
        let model = LoadedModel::open(&params.model, params.tile, inference)?;
        let summary = model.summary();
        tracing::info!(
            model = %summary.name,
            format = %summary.format,
            provider = summary.provider.used.name(),
            tile = summary.tile,
            halo = summary.halo,
            self_test = ?summary.self_test,
            "denoise model loaded"
        );
        Ok(Self {
            slot: Arc::new(ModelSlot::new(summary)),
            model,
            pool_frames: params.pool_frames,
            pool: None,
            input: Vec::new(),
        })
    }

    /// Name of the loaded model.
    pub fn model_name(&self) -> String {
        self.slot.current().name.clone()
    }
}

impl Stage for DenoiseStage {
    fn kind(&self) -> &'static str {
        "denoise"
    }

    fn model_slot(&self) -> Option<Arc<ModelSlot>> {
        Some(self.slot.clone())
    }

    fn process(&mut self, input: &Frame, out: &mut Emitter<'_>) -> Result<(), StageError> {
        if let Some(model) = self.slot.take() {
            tracing::info!(model = %model.package().name, "denoise model replaced");
            self.model = model;
        }
        let spec = input.spec();
        let (h, w) = (spec.height as usize, spec.width as usize);
        let mut output = F32Output::acquire(&mut self.pool, input, self.pool_frames)?;
        self.model
            .process_pixels(input.pixels(), h, w, &mut self.input, output.pixels())
            .map_err(|e| StageError(format!("frame {}: {e}", input.meta().frame_number)))?;
        out.emit(output.publish());
        Ok(())
    }
}
