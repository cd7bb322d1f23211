//! Execution provider selection: use the configured provider when it can be registered, and
//! otherwise fall back to CPU with a warning, unless the configuration requires the GPU.

use serde::Deserialize;

use super::InferenceError;

/// Execution providers scopepilot can ask ONNX Runtime for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// The CPU provider (always available).
    #[default]
    Cpu,
    /// NVIDIA CUDA (needs the `onnxruntime-gpu` wheel and a GPU).
    Cuda,
    /// NVIDIA TensorRT (needs the `onnxruntime-gpu` wheel, TensorRT and a GPU).
    Tensorrt,
}

impl ProviderKind {
    /// Name used in config and status.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Cpu => "cpu",
            ProviderKind::Cuda => "cuda",
            ProviderKind::Tensorrt => "tensorrt",
        }
    }
}

/// The outcome of provider selection, reported in status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSelection {
    /// Provider the configuration asked for.
    pub requested: ProviderKind,
    /// Provider actually in use.
    pub used: ProviderKind,
    /// Why the requested provider is not in use, if it is not.
    pub fallback_reason: Option<String>,
}

/// Choose the provider: `register` tries to register a GPU provider and says why it failed.
pub fn select_provider(
    requested: ProviderKind,
    require_gpu: bool,
    register: impl FnOnce(ProviderKind) -> Result<(), String>,
) -> Result<ProviderSelection, InferenceError> {
    if requested == ProviderKind::Cpu {
        return Ok(ProviderSelection {
            requested,
            used: ProviderKind::Cpu,
            fallback_reason: None,
        });
    }
    match register(requested) {
        Ok(()) => Ok(ProviderSelection {
            requested,
            used: requested,
            fallback_reason: None,
        }),
        Err(reason) if require_gpu => Err(InferenceError::ProviderRequired {
            provider: requested.name(),
            reason,
        }),
        Err(reason) => {
            tracing::warn!(requested = requested.name(), %reason, "execution provider unavailable; falling back to cpu");
            Ok(ProviderSelection {
                requested,
                used: ProviderKind::Cpu,
                fallback_reason: Some(reason),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_needs_no_registration() {
        let s = select_provider(ProviderKind::Cpu, true, |_| panic!("must not register")).unwrap();
        assert_eq!(s.used, ProviderKind::Cpu);
        assert!(s.fallback_reason.is_none());
    }

    #[test]
    fn a_registered_gpu_provider_is_used() {
        let s = select_provider(ProviderKind::Cuda, false, |k| {
            assert_eq!(k, ProviderKind::Cuda);
            Ok(())
        })
        .unwrap();
        assert_eq!(s.used, ProviderKind::Cuda);
    }

    #[test]
    fn an_unavailable_gpu_falls_back_to_cpu_with_the_reason() {
        let s = select_provider(ProviderKind::Tensorrt, false, |_| {
            Err("libnvinfer.so.10 not found".into())
        })
        .unwrap();
        assert_eq!(
            (s.requested, s.used),
            (ProviderKind::Tensorrt, ProviderKind::Cpu)
        );
        assert_eq!(
            s.fallback_reason.as_deref(),
            Some("libnvinfer.so.10 not found")
        );
    }

    #[test]
    fn an_unavailable_required_gpu_is_an_error() {
        let e = select_provider(ProviderKind::Cuda, true, |_| Err("no CUDA device".into()))
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("cuda") && msg.contains("no CUDA device") && msg.contains("require_gpu"),
            "{msg}"
        );
    }
}
