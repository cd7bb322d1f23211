//! `ImageModel`: an ONNX model that maps one single-channel image to another
//! (`[1, 1, H, W]` float32 in, same shape out), run through ONNX Runtime.

use std::path::{Path, PathBuf};

use super::InferenceError;
use super::provider::{ProviderKind, ProviderSelection, select_provider};
use super::runtime::{InferenceConfig, OrtRuntime};

/// A loaded image-to-image model.
pub struct ImageModel {
    session: ort::session::Session,
    path: PathBuf,
    input_name: String,
    output_name: String,
    provider: ProviderSelection,
}

impl std::fmt::Debug for ImageModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageModel")
            .field("path", &self.path)
            .field("input", &self.input_name)
            .field("output", &self.output_name)
            .field("provider", &self.provider)
            .finish()
    }
}

fn gpu_provider(
    kind: ProviderKind,
    config: &InferenceConfig,
) -> ort::ep::ExecutionProviderDispatch {
    match kind {
        ProviderKind::Tensorrt => {
            let mut trt = ort::ep::TensorRT::default();
            if let Some(dir) = &config.tensorrt_cache_dir {
                trt = trt
                    .with_engine_cache(true)
                    .with_engine_cache_path(dir.display());
            }
            trt.build().error_on_failure()
        }
        ProviderKind::Cuda | ProviderKind::Cpu => {
            ort::ep::CUDA::default().build().error_on_failure()
        }
    }
}

impl ImageModel {
    /// Load the model at `path` with the configured provider, threads and optimisation.
    pub fn load(
        runtime: &OrtRuntime,
        path: &Path,
        config: &InferenceConfig,
    ) -> Result<Self, InferenceError> {
        let err = |problem: String| InferenceError::Model {
            path: path.display().to_string(),
            problem,
        };
        let mut builder = ort::session::Session::builder(runtime.environment())
            .map_err(|e| err(e.to_string()))?
            .with_optimization_level(config.optimization.to_ort())
            .map_err(|e| err(e.to_string()))?;
        if config.intra_threads > 0 {
            builder = builder
                .with_intra_threads(config.intra_threads)
                .map_err(|e| err(e.to_string()))?;
        }
        let mut slot = Some(builder);
        let provider = select_provider(config.provider, config.require_gpu, |kind| {
            let b = slot.take().expect("builder present");
            match b.with_execution_providers([gpu_provider(kind, config)]) {
                Ok(b) => {
                    slot = Some(b);
                    Ok(())
                }
                Err(e) => {
                    let reason = e.to_string();
                    slot = Some(e.recover());
                    Err(reason)
                }
            }
        })?;
        let mut builder = slot.expect("builder present");
        if !path.is_file() {
            return Err(err("file not found".into()));
        }
        let session = builder
            .commit_from_file(path)
            .map_err(|e| err(format!("not a loadable ONNX model: {e}")))?;
        let (inputs, outputs) = (session.inputs(), session.outputs());
        if inputs.len() != 1 || outputs.len() != 1 {
            return Err(err(format!(
                "an image model needs exactly one input and one output, found {} and {}",
                inputs.len(),
                outputs.len()
            )));
        }
        Ok(Self {
            input_name: inputs[0].name().to_string(),
            output_name: outputs[0].name().to_string(),
            path: path.to_path_buf(),
            session,
            provider,
        })
    }

    /// Provider requested and in use.
    pub fn provider(&self) -> &ProviderSelection {
        &self.provider
    }

    /// Name of the model's input.
    pub fn input_name(&self) -> &str {
        &self.input_name
    }

    /// Run on a `height` x `width` image (row-major) and write the result into `out`.
    pub fn run(
        &mut self,
        input: &[f32],
        height: usize,
        width: usize,
        out: &mut [f32],
    ) -> Result<(), InferenceError> {
        let run_err = |e: &dyn std::fmt::Display| InferenceError::Run(e.to_string());
        if input.len() != height * width || out.len() != input.len() {
            return Err(InferenceError::Run(format!(
                "buffers of {} and {} values do not fit a {height}x{width} image",
                input.len(),
                out.len()
            )));
        }
        let tensor = ort::value::TensorRef::from_array_view(([1usize, 1, height, width], input))
            .map_err(|e| run_err(&e))?;
        let outputs = self
            .session
            .run(ort::inputs![tensor])
            .map_err(|e| run_err(&e))?;
        let (shape, data) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| run_err(&e))?;
        if data.len() != out.len() {
            return Err(InferenceError::Run(format!(
                "model output has shape {shape:?}, expected [1, 1, {height}, {width}]"
            )));
        }
        out.copy_from_slice(data);
        Ok(())
    }
}
