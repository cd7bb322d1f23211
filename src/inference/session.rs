//! `ImageModel`: an ONNX model that maps one image (of one or more channel planes) to a
//! single-channel image of the same size (float32, axes from the package, e.g. `[1, C, H, W]`
//! -> `[1, 1, H, W]`), run through ONNX Runtime with a preallocated output.

use std::path::PathBuf;

use ort::session::{HasSelectedOutputs, OutputSelector, RunOptions};

use super::InferenceError;
use super::package::{Axis, ModelPackage};
use super::provider::{ProviderKind, ProviderSelection, select_provider};
use super::runtime::{InferenceConfig, OrtRuntime};

/// A loaded image-to-image model.
pub struct ImageModel {
    session: ort::session::Session,
    path: PathBuf,
    input_name: String,
    output_name: String,
    input_axes: Vec<Axis>,
    /// Channel planes of the input (1 for an image-to-image model).
    input_channels: usize,
    provider: ProviderSelection,
    /// Input tensors and run options with a preallocated output, per input size: tiles are
    /// copied into the input and ONNX Runtime writes straight into the output, so
    /// steady-state frames allocate nothing.
    prepared: Vec<Prepared>,
}

/// Buffers for one input size.
struct Prepared {
    size: (usize, usize),
    input: ort::value::Tensor<f32>,
    options: RunOptions<HasSelectedOutputs>,
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

/// How many distinct tile sizes keep a preallocated output (a frame has at most four).
const PREPARED_SIZES: usize = 8;

/// The tensor shape for an `h` x `w` image of `channels` planes with these axes (batch 1).
fn shape_for(axes: &[Axis], channels: usize, h: usize, w: usize) -> Vec<usize> {
    axes.iter()
        .map(|a| match a {
            Axis::Y => h,
            Axis::X => w,
            Axis::Channel => channels,
            Axis::Batch => 1,
        })
        .collect()
}

/// The graph input or output called `want` (any name when the graph has just one).
fn pick<'a>(
    outlets: &'a [ort::value::Outlet],
    want: &str,
    what: &str,
) -> Result<&'a ort::value::Outlet, String> {
    let found = if want.is_empty() {
        match outlets {
            [one] => Some(one),
            _ => None,
        }
    } else {
        outlets.iter().find(|o| o.name() == want)
    };
    found.ok_or_else(|| {
        let names: Vec<&str> = outlets.iter().map(|o| o.name()).collect();
        if want.is_empty() {
            format!(
                "the graph has {} {what}s {names:?}; name the one to use",
                names.len()
            )
        } else {
            format!("the graph has no {what} {want:?} (it has {names:?})")
        }
    })
}

/// Check a graph tensor against the axes and channel count the package gives it.
fn check_outlet(outlet: &ort::value::Outlet, axes: &[Axis], channels: usize) -> Result<(), String> {
    let name = outlet.name();
    let dtype = outlet.dtype();
    match dtype.tensor_type() {
        Some(ort::value::TensorElementType::Float32) => {}
        Some(other) => {
            return Err(format!(
                "tensor {name:?} is {other:?}; only float32 model tensors are supported"
            ));
        }
        None => return Err(format!("{name:?} is not a tensor")),
    }
    let shape = dtype.tensor_shape().map(|s| s.to_vec()).unwrap_or_default();
    if shape.len() != axes.len() {
        return Err(format!(
            "tensor {name:?} has shape {shape:?} ({} dimensions) but the package gives it the axes {axes:?}",
            shape.len()
        ));
    }
    for (dim, axis) in shape.iter().zip(axes) {
        let want = if *axis == Axis::Channel { channels } else { 1 };
        if matches!(axis, Axis::Batch | Axis::Channel) && *dim != want as i64 && *dim != -1 {
            return Err(format!(
                "tensor {name:?} has shape {shape:?}: its {axis:?} axis is {dim}, the package says {want}"
            ));
        }
    }
    Ok(())
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
    /// Load the package's ONNX file with the configured provider, threads and optimisation,
    /// and check its graph against the package (names, element types, axes).
    pub fn load(
        runtime: &OrtRuntime,
        package: &ModelPackage,
        config: &InferenceConfig,
    ) -> Result<Self, InferenceError> {
        let path = package.onnx.as_path();
        let err = |problem: String| InferenceError::Model {
            path: path.display().to_string(),
            problem,
        };
        let mut builder = ort::session::Session::builder(runtime.environment())
            .map_err(|e| err(e.to_string()))?
            .with_optimization_level(config.optimization.to_ort())
            .map_err(|e| err(e.to_string()))?;
        builder = builder
            .with_intra_op_spinning(config.spinning)
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
        if session.inputs().len() != 1 {
            return Err(err(format!(
                "an image model needs exactly one input, found {}",
                session.inputs().len()
            )));
        }
        let input = pick(session.inputs(), &package.input_name, "input").map_err(err)?;
        let output = pick(session.outputs(), &package.output_name, "output").map_err(err)?;
        let input_channels = package.input_channels.len().max(1);
        check_outlet(input, &package.input_axes, input_channels).map_err(err)?;
        check_outlet(output, &package.output_axes, 1).map_err(err)?;
        let (input_name, output_name) = (input.name().to_string(), output.name().to_string());
        Ok(Self {
            input_name,
            output_name,
            input_axes: package.input_axes.clone(),
            input_channels,
            path: path.to_path_buf(),
            session,
            provider,
            prepared: Vec::new(),
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

    /// Name of the model's output.
    pub fn output_name(&self) -> &str {
        &self.output_name
    }

    /// The buffers for an `h` x `w` input, made on first use.
    fn prepared(&mut self, h: usize, w: usize) -> Result<usize, InferenceError> {
        if let Some(i) = self.prepared.iter().position(|p| p.size == (h, w)) {
            return Ok(i);
        }
        let run_err = |e: ort::Error| InferenceError::Run(e.to_string());
        let tensor = |channels| {
            ort::value::Tensor::<f32>::new(
                &ort::memory::Allocator::default(),
                shape_for(&self.input_axes, channels, h, w),
            )
            .map_err(run_err)
        };
        let options = RunOptions::new().map_err(run_err)?.with_outputs(
            OutputSelector::no_default()
                .with(&self.output_name)
                .preallocate(&self.output_name, tensor(1)?),
        );
        if self.prepared.len() == PREPARED_SIZES {
            self.prepared.remove(0);
        }
        self.prepared.push(Prepared {
            size: (h, w),
            input: tensor(self.input_channels)?,
            options,
        });
        Ok(self.prepared.len() - 1)
    }

    /// Channel planes of the input.
    pub fn input_channels(&self) -> usize {
        self.input_channels
    }

    /// Run on a `height` x `width` image (row-major, channel planes one after the other) and
    /// write the result into `out`.
    pub fn run(
        &mut self,
        input: &[f32],
        height: usize,
        width: usize,
        out: &mut [f32],
    ) -> Result<(), InferenceError> {
        if input.len() != self.input_channels * height * width {
            return Err(InferenceError::Run(format!(
                "an input of {} values does not fit a {height}x{width} image of {} channel(s)",
                input.len(),
                self.input_channels
            )));
        }
        self.run_filled(height, width, |tensor| tensor.copy_from_slice(input), out)
    }

    /// Run on a `height` x `width` image that `fill` writes straight into the model's input
    /// tensor (all channel planes; saving a copy), and write the result into `out`.
    pub fn run_filled(
        &mut self,
        height: usize,
        width: usize,
        fill: impl FnOnce(&mut [f32]),
        out: &mut [f32],
    ) -> Result<(), InferenceError> {
        let run_err = |e: &dyn std::fmt::Display| InferenceError::Run(e.to_string());
        if out.len() != height * width {
            return Err(InferenceError::Run(format!(
                "an output of {} values does not fit a {height}x{width} image",
                out.len()
            )));
        }
        let index = self.prepared(height, width)?;
        let prepared = &mut self.prepared[index];
        fill(prepared.input.extract_tensor_mut().1);
        let outputs = self
            .session
            .run_with_options(ort::inputs![&prepared.input], &prepared.options)
            .map_err(|e| run_err(&e))?;
        let (shape, data) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| run_err(&e))?;
        if data.len() != out.len() {
            return Err(InferenceError::Run(format!(
                "model output has shape {shape:?}, expected {height}x{width} pixels"
            )));
        }
        out.copy_from_slice(data);
        Ok(())
    }
}
