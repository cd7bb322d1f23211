//! `OrtRuntime`: the ONNX Runtime shared library and the process-wide environment.
//!
//! The library is found in this order, first match wins:
//! 1. `inference.ort_library` in the config;
//! 2. the `ORT_DYLIB_PATH` environment variable;
//! 3. the project's virtualenv, as installed by `scripts/setup-venv.sh` from the
//!    `onnxruntime` wheel: `.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*`,
//!    looked up in the current directory and then next to the executable's ancestors.
//!
//! A missing or unloadable library is an [`InferenceError::Library`] naming every place tried.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serde::Deserialize;

use super::InferenceError;
use super::provider::ProviderKind;

/// `[inference]`: ONNX Runtime settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InferenceConfig {
    /// Path of `libonnxruntime.so*` (empty = `ORT_DYLIB_PATH`, then the project venv).
    pub ort_library: Option<PathBuf>,
    /// Execution provider: `cpu`, `cuda` or `tensorrt`.
    pub provider: ProviderKind,
    /// Fail instead of falling back to CPU when the GPU provider cannot be registered.
    pub require_gpu: bool,
    /// Threads per inference session (0 = ONNX Runtime's default).
    pub intra_threads: usize,
    /// Let idle inference threads spin-wait for work (lower latency for a single learned
    /// stage; several learned stages on few cores steal each other's CPU while spinning).
    pub spinning: bool,
    /// Graph optimisation level: `disable`, `basic`, `extended` or `all`.
    pub optimization: OptimizationLevel,
    /// Where TensorRT keeps its built engines (so they are not rebuilt at every start).
    pub tensorrt_cache_dir: Option<PathBuf>,
}

impl Default for InferenceConfig {
    fn default() -> Self {
        Self {
            ort_library: None,
            provider: ProviderKind::Cpu,
            require_gpu: false,
            intra_threads: 0,
            spinning: true,
            optimization: OptimizationLevel::All,
            tensorrt_cache_dir: None,
        }
    }
}

/// ONNX Runtime graph optimisation levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OptimizationLevel {
    /// No graph optimisation.
    Disable,
    /// Constant folding and redundant node removal.
    Basic,
    /// Plus node fusions.
    Extended,
    /// Everything, including layout optimisations.
    #[default]
    All,
}

impl OptimizationLevel {
    pub(crate) fn to_ort(self) -> ort::session::builder::GraphOptimizationLevel {
        use ort::session::builder::GraphOptimizationLevel as L;
        match self {
            OptimizationLevel::Disable => L::Disable,
            OptimizationLevel::Basic => L::Level1,
            OptimizationLevel::Extended => L::Level2,
            OptimizationLevel::All => L::All,
        }
    }
}

/// Where to look for the library, in order, with a label for error messages.
pub fn library_candidates(config: &InferenceConfig) -> Vec<(String, Option<PathBuf>)> {
    let mut out = Vec::new();
    if let Some(p) = &config.ort_library {
        out.push(("inference.ort_library".to_string(), Some(p.clone())));
        return out; // an explicit setting is never second-guessed
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        out.push(("ORT_DYLIB_PATH".to_string(), Some(PathBuf::from(p))));
        return out;
    }
    for root in crate::install::search_roots() {
        let venv = root.join(".venv");
        out.push((format!("{}", venv.display()), venv_library(&venv)));
    }
    out
}

/// `libonnxruntime.so*` inside a virtualenv, if installed.
fn venv_library(venv: &Path) -> Option<PathBuf> {
    let lib = std::fs::read_dir(venv.join("lib")).ok()?;
    let mut found: Vec<PathBuf> = lib
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .filter_map(|e| std::fs::read_dir(e.path().join("site-packages/onnxruntime/capi")).ok())
        .flat_map(|dir| dir.flatten().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libonnxruntime.so"))
        })
        .collect();
    found.sort(); // deterministic when several Python versions hold one
    found.pop()
}

/// Resolve the library path in the documented order.
pub fn resolve_library(config: &InferenceConfig) -> Result<PathBuf, InferenceError> {
    let candidates = library_candidates(config);
    let mut tried = Vec::new();
    for (label, path) in candidates {
        match path {
            Some(p) if p.is_file() => return Ok(p),
            Some(p) => tried.push(format!("{label}: {} does not exist", p.display())),
            None => tried.push(format!("{label}: no onnxruntime wheel installed")),
        }
    }
    Err(InferenceError::Library(format!(
        "not found; run scripts/setup-venv.sh (installs the onnxruntime wheel into .venv) or set \
         inference.ort_library / ORT_DYLIB_PATH. Tried: {}",
        tried.join("; ")
    )))
}

/// The loaded ONNX Runtime and its environment (one per process).
#[derive(Debug)]
pub struct OrtRuntime {
    library: PathBuf,
    environment: ort::environment::Environment,
}

static RUNTIME: OnceLock<Result<Arc<OrtRuntime>, String>> = OnceLock::new();

impl OrtRuntime {
    /// Load ONNX Runtime on first use; later calls return the same runtime.
    pub fn get_or_init(config: &InferenceConfig) -> Result<Arc<OrtRuntime>, InferenceError> {
        RUNTIME
            .get_or_init(|| Self::load(config).map(Arc::new).map_err(|e| e.to_string()))
            .clone()
            .map_err(InferenceError::Library)
    }

    fn load(config: &InferenceConfig) -> Result<OrtRuntime, InferenceError> {
        let library = resolve_library(config)?;
        let lib_err = |e: &dyn std::fmt::Display| {
            InferenceError::Library(format!("cannot load {}: {e}", library.display()))
        };
        let environment = ort::init_from(&library)
            .map_err(|e| lib_err(&e))?
            .with_name("scopepilot")
            .build()
            .map_err(|e| lib_err(&e))?;
        tracing::info!(library = %library.display(), "ONNX Runtime loaded");
        Ok(OrtRuntime {
            library,
            environment,
        })
    }

    /// Path of the loaded library.
    pub fn library(&self) -> &Path {
        &self.library
    }

    /// The process-wide ONNX Runtime environment (also for sessions made outside
    /// scopepilot's own types, e.g. the bare-loop benchmark).
    pub fn environment(&self) -> &ort::environment::Environment {
        &self.environment
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_library_path_is_the_only_candidate_and_a_missing_one_is_named() {
        let config = InferenceConfig {
            ort_library: Some("/nonexistent/libonnxruntime.so.1".into()),
            ..InferenceConfig::default()
        };
        let candidates = library_candidates(&config);
        assert_eq!(candidates.len(), 1);
        let err = resolve_library(&config).unwrap_err().to_string();
        assert!(
            err.contains("inference.ort_library")
                && err.contains("/nonexistent/libonnxruntime.so.1"),
            "{err}"
        );
        assert!(err.contains("setup-venv.sh"), "{err}");
    }

    #[test]
    fn finds_the_library_inside_a_virtualenv_layout() {
        let root = std::env::temp_dir().join(format!("scopepilot-venv-{}", std::process::id()));
        let capi = root.join(".venv/lib/python3.11/site-packages/onnxruntime/capi");
        std::fs::create_dir_all(&capi).unwrap();
        assert_eq!(venv_library(&root.join(".venv")), None);
        std::fs::write(capi.join("libonnxruntime.so.1.31.1"), b"").unwrap();
        std::fs::write(capi.join("libonnxruntime_providers_shared.so"), b"").unwrap();
        assert_eq!(
            venv_library(&root.join(".venv")),
            Some(capi.join("libonnxruntime.so.1.31.1"))
        );
        let _ = std::fs::remove_dir_all(root);
    }
}
