//! `scopepilot.v1.Recording`: StartRecording, StopRecording.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::recording_to_proto;
use crate::daemon::Daemon;
use crate::proto::{self, recording_server::Recording};

/// The Recording service.
pub struct RecordingApi {
    daemon: Arc<Daemon>,
}

impl RecordingApi {
    /// A service driving `daemon`.
    pub fn new(daemon: Arc<Daemon>) -> Self {
        Self { daemon }
    }
}

#[tonic::async_trait]
impl Recording for RecordingApi {
    async fn start_recording(
        &self,
        request: Request<proto::StartRecordingRequest>,
    ) -> Result<Response<proto::StartRecordingResponse>, Status> {
        let r = request.into_inner();
        let daemon = self.daemon.clone();
        // Creates directories and files: off the async runtime.
        let status =
            tokio::task::spawn_blocking(move || daemon.start_recording(&r.name, &r.streams))
                .await
                .map_err(|e| Status::internal(format!("daemon task failed: {e}")))??;
        Ok(Response::new(proto::StartRecordingResponse {
            status: Some(recording_to_proto(&status)),
        }))
    }

    async fn stop_recording(
        &self,
        _request: Request<proto::StopRecordingRequest>,
    ) -> Result<Response<proto::StopRecordingResponse>, Status> {
        let daemon = self.daemon.clone();
        // Waits for the writer to drain its queue.
        let status = tokio::task::spawn_blocking(move || daemon.stop_recording())
            .await
            .map_err(|e| Status::internal(format!("daemon task failed: {e}")))??;
        Ok(Response::new(proto::StopRecordingResponse {
            status: Some(recording_to_proto(&status)),
        }))
    }
}
