//! `scopepilot.v1.Models`: ListModels, LoadModel.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::{model_entry_to_proto, model_to_proto};
use crate::daemon::Daemon;
use crate::proto::{self, models_server::Models};

/// The Models service.
pub struct ModelsApi {
    daemon: Arc<Daemon>,
}

impl ModelsApi {
    /// A service over `daemon`'s model catalog.
    pub fn new(daemon: Arc<Daemon>) -> Self {
        Self { daemon }
    }
}

#[tonic::async_trait]
impl Models for ModelsApi {
    async fn list_models(
        &self,
        _request: Request<proto::ListModelsRequest>,
    ) -> Result<Response<proto::ListModelsResponse>, Status> {
        // Scanning opens every package (and hashes its weights): off the async runtime.
        let daemon = self.daemon.clone();
        let entries = tokio::task::spawn_blocking(move || daemon.list_models())
            .await
            .map_err(|e| Status::internal(format!("daemon task failed: {e}")))?;
        Ok(Response::new(proto::ListModelsResponse {
            models: entries.iter().map(model_entry_to_proto).collect(),
        }))
    }

    async fn load_model(
        &self,
        request: Request<proto::LoadModelRequest>,
    ) -> Result<Response<proto::LoadModelResponse>, Status> {
        let req = request.into_inner();
        if req.model.trim().is_empty() {
            return Err(Status::invalid_argument(
                "model is empty: give a package path or the name of a package from ListModels",
            ));
        }
        let daemon = self.daemon.clone();
        let (summary, applied) = tokio::task::spawn_blocking(move || {
            let stage = Some(req.stage.as_str()).filter(|s| !s.is_empty());
            daemon.load_model(&req.model, stage, req.tile as usize)
        })
        .await
        .map_err(|e| Status::internal(format!("daemon task failed: {e}")))??;
        Ok(Response::new(proto::LoadModelResponse {
            model: Some(model_to_proto(&summary)),
            applied_to_running_stage: applied,
        }))
    }
}
