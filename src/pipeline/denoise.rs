//! `DenoiseStage`: runs an image-to-image model (e.g. a CARE / Noise2Void denoiser from a
//! bioimage.io package) on every frame through ONNX Runtime, with the package's processing and
//! tiling. Output is f32 from the stage's own frame pool; a failed inference skips the frame
//! (counted) and the stage goes on. The model can be replaced while running through its
//! [`ModelSlot`] (the `Models.LoadModel` RPC); the switch happens between two frames.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

pub use super::model_slot::ModelSlot;
use super::model_slot::load_stage_model;
use super::stage::{Emitter, F32Output, Stage, StageError};
use crate::frame::{Frame, FramePool};
use crate::inference::{InferenceConfig, InferenceError, LoadedModel, ModelPackage};

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
        let (model, slot) = load_stage_model(
            &params.model,
            params.tile,
            inference,
            "denoise",
            1,
            "one image plane",
        )?;
        Ok(Self {
            slot,
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
        self.slot.update(&mut self.model, "denoise");
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
