//! Inference with ONNX Runtime (through the `ort` crate, loaded at run time).
//!
//! - [`runtime`]: finds the ONNX Runtime shared library in a documented order and creates the
//!   one process-wide environment; a missing or wrong library is an error, never a panic.
//! - [`provider`]: execution provider selection (CPU, CUDA, TensorRT) with fallback to CPU.
//! - [`package`] / [`bioimageio`]: model packages (bioimage.io `rdf.yaml` 0.5 / 0.4, a TOML
//!   sidecar, or a bare `.onnx`), checked before anything is loaded; [`npy`] reads their test
//!   tensors and [`processing`] implements their pre/postprocessing.
//! - [`session`]: the ONNX Runtime session of a single-channel image model.
//! - [`tiling`]: overlapping tiles with the model's halo, exact where the halo suffices.
//! - [`catalog`]: the packages a daemon offers (`ListModels` / `LoadModel`).
//! - [`model`]: a package made runnable on frames (processing + tiled inference), self-tested
//!   with the package's test tensors when it is loaded.

pub mod bioimageio;
pub mod catalog;
pub mod model;
pub mod npy;
pub mod package;
pub mod processing;
pub mod provider;
pub mod runtime;
pub mod session;
pub mod tiling;

pub use catalog::ModelCatalog;
pub use model::{LoadedModel, ModelSummary, SelfTestReport};
pub use package::{DetectorDefaults, ModelPackage};
pub use provider::{ProviderKind, ProviderSelection};
pub use runtime::{InferenceConfig, OrtRuntime};
pub use session::ImageModel;

/// Why inference could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    /// No ONNX Runtime library was found, or it could not be loaded.
    #[error("ONNX Runtime library: {0}")]
    Library(String),
    /// A GPU provider was required but could not be registered.
    #[error(
        "execution provider {provider} is required (inference.require_gpu = true) but unavailable: {reason}"
    )]
    ProviderRequired {
        /// Provider asked for.
        provider: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// The model file could not be loaded.
    #[error("model {path}: {problem}")]
    Model {
        /// The model file.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// Running the model failed.
    #[error("inference failed: {0}")]
    Run(String),
}
