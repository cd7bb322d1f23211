//! Inference with ONNX Runtime (through the `ort` crate, loaded at run time).
//!
//! - [`runtime`]: finds the ONNX Runtime shared library in a documented order and creates the
//!   one process-wide environment; a missing or wrong library is an error, never a panic.
//! - [`provider`]: execution provider selection (CPU, CUDA, TensorRT) with fallback to CPU.
//! - [`session`]: a loaded model that runs single-channel images.

pub mod package;
pub mod provider;
pub mod runtime;
pub mod session;
pub mod tiling;

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
