//! `ModelSlot`: the model of a running learned stage, seen from outside (status shows it,
//! `Models.LoadModel` replaces it); the stage picks a replacement up between two frames.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::inference::{InferenceConfig, InferenceError, LoadedModel, ModelSummary};

/// Load the package at `path` (with its self-test) for a `role` stage (`denoise`, ...) whose
/// models take `channels` input planes (`which` names them in the error), and the slot
/// that shows and replaces it.
pub fn load_stage_model(
    path: &Path,
    tile: usize,
    inference: &InferenceConfig,
    role: &str,
    channels: usize,
    which: &str,
) -> Result<(LoadedModel, Arc<ModelSlot>), InferenceError> {
    let model = LoadedModel::open(path, tile, inference)?;
    if model.input_channels() != channels {
        return Err(InferenceError::Model {
            path: path.display().to_string(),
            problem: format!(
                "takes {} input channel(s) {:?}; the {role} stage runs models of {channels} ({which})",
                model.input_channels(),
                model.package().input_channels
            ),
        });
    }
    let summary = model.summary();
    tracing::info!(
        role,
        model = %summary.name,
        format = %summary.format,
        provider = summary.provider.used.name(),
        tile = summary.tile,
        halo = summary.halo,
        self_test = ?summary.self_test,
        "model loaded"
    );
    Ok((model, Arc::new(ModelSlot::new(summary, channels))))
}

/// The model of a running stage, seen from outside: what it is, and a model waiting to
/// replace it.
#[derive(Debug)]
pub struct ModelSlot {
    /// Input channels every model of this stage must take.
    input_channels: usize,
    current: Mutex<Arc<ModelSummary>>,
    pending: Mutex<Option<LoadedModel>>,
    has_pending: AtomicBool,
}

impl ModelSlot {
    /// A slot holding a model described by `summary`, for models of `input_channels`.
    pub fn new(summary: ModelSummary, input_channels: usize) -> Self {
        Self {
            input_channels,
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

    /// Hand over a loaded model; the stage switches to it before its next frame. A model
    /// with the wrong number of input channels for the stage is refused.
    pub fn replace(&self, model: LoadedModel) -> Result<(), String> {
        if model.input_channels() != self.input_channels {
            return Err(format!(
                "model {:?} takes {} input channel(s) {:?}; this stage runs models of {}",
                model.package().name,
                model.input_channels(),
                model.package().input_channels,
                self.input_channels
            ));
        }
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = Some(model);
        self.has_pending.store(true, Ordering::Release);
        Ok(())
    }

    /// Switch `model` to the waiting one, if any (once per frame: one atomic load).
    pub fn update(&self, model: &mut LoadedModel, role: &str) {
        if let Some(next) = self.take() {
            tracing::info!(role, model = %next.package().name, "model replaced");
            *model = next;
        }
    }

    /// The waiting model, if any (checked by the stage once per frame: one atomic load).
    pub fn take(&self) -> Option<LoadedModel> {
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
