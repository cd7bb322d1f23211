//! `DenoiseStage`: runs an image-to-image ONNX model (e.g. a CARE / Noise2Void denoiser) on
//! every frame through ONNX Runtime, tiled with the model's halo. Output is f32 from the
//! stage's own frame pool; a failed inference skips the frame (counted) and the stage goes on.

use std::path::PathBuf;

use serde::Deserialize;

use super::stage::{Emitter, F32Output, Stage, StageError};
use crate::frame::{Frame, FramePool};
use crate::inference::package::ModelPackage;
use crate::inference::tiling::{TileBuffers, Tiling, run_tiled};
use crate::inference::{ImageModel, InferenceConfig, InferenceError, OrtRuntime};

/// Parameters of the `denoise` stage (`params = { model = "models/...", tile = 0 }`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenoiseParams {
    /// Model package: a `model.toml`, its folder, or a bare `.onnx` (relative to the working
    /// directory).
    pub model: PathBuf,
    /// Output tile side (0 = the model's preferred tile).
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
    model: ImageModel,
    name: String,
    tiling: Tiling,
    pool_frames: usize,
    pool: Option<FramePool>,
    input: Vec<f32>,
    buffers: TileBuffers,
}

impl DenoiseStage {
    /// Load the model and make the stage.
    pub fn new(
        params: &DenoiseParams,
        inference: &InferenceConfig,
    ) -> Result<Self, InferenceError> {
        let package = ModelPackage::open(&params.model)?;
        let runtime = OrtRuntime::get_or_init(inference)?;
        let model = ImageModel::load(&runtime, &package.onnx, inference)?;
        tracing::info!(
            model = %package.sidecar.name,
            provider = model.provider().used.name(),
            tile = package.tiling(params.tile).tile,
            halo = package.sidecar.tiling.halo,
            "denoise model loaded"
        );
        Ok(Self {
            model,
            name: package.sidecar.name.clone(),
            tiling: package.tiling(params.tile),
            pool_frames: params.pool_frames,
            pool: None,
            input: Vec::new(),
            buffers: TileBuffers::default(),
        })
    }

    /// Name of the loaded model.
    pub fn model_name(&self) -> &str {
        &self.name
    }
}

impl Stage for DenoiseStage {
    fn kind(&self) -> &'static str {
        "denoise"
    }

    fn process(&mut self, input: &Frame, out: &mut Emitter<'_>) -> Result<(), StageError> {
        let spec = input.spec();
        let (h, w) = (spec.height as usize, spec.width as usize);
        input.pixels().copy_to_f32(&mut self.input);
        let mut output = F32Output::acquire(&mut self.pool, input, self.pool_frames)?;
        let model = &mut self.model;
        run_tiled(
            &self.input,
            h,
            w,
            self.tiling,
            &mut self.buffers,
            output.pixels(),
            |i, th, tw, o| model.run(i, th, tw, o),
        )
        .map_err(|e| StageError(format!("frame {}: {e}", input.meta().frame_number)))?;
        out.emit(output.publish());
        Ok(())
    }
}
