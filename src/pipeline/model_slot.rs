//! `ModelSlot`: the model of a running learned stage, seen from outside (status shows it,
//! `Models.LoadModel` replaces it); the stage picks a replacement up between two frames.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::inference::{LoadedModel, ModelSummary};

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
