//! `scopepilot.v1.Acquisition`: Start, Stop, GetStatus, SetFrameInterval, SetCameraSettings.

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

use super::convert::{camera_settings_from_proto, camera_settings_to_proto, status_to_proto};
use crate::daemon::Daemon;
use crate::proto::{self, acquisition_server::Acquisition};

/// The Acquisition service.
pub struct AcquisitionApi {
    daemon: Arc<Daemon>,
}

impl AcquisitionApi {
    /// A service driving `daemon`.
    pub fn new(daemon: Arc<Daemon>) -> Self {
        Self { daemon }
    }

    /// Run a daemon call that may block (joining threads, decoding files) off the async runtime.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Daemon) -> Result<T, crate::daemon::DaemonError> + Send + 'static,
    ) -> Result<T, Status> {
        let daemon = self.daemon.clone();
        tokio::task::spawn_blocking(move || f(&daemon))
            .await
            .map_err(|e| Status::internal(format!("daemon task failed: {e}")))?
            .map_err(Status::from)
    }
}

#[tonic::async_trait]
impl Acquisition for AcquisitionApi {
    async fn start(
        &self,
        request: Request<proto::StartRequest>,
    ) -> Result<Response<proto::StartResponse>, Status> {
        let source = request.into_inner().source;
        let status = self
            .blocking(move |d| {
                d.start(Some(&source))?;
                Ok(d.status())
            })
            .await?;
        Ok(Response::new(proto::StartResponse {
            status: Some(status_to_proto(&status)),
        }))
    }

    async fn stop(
        &self,
        _request: Request<proto::StopRequest>,
    ) -> Result<Response<proto::StopResponse>, Status> {
        let status = self.blocking(|d| d.stop()).await?;
        Ok(Response::new(proto::StopResponse {
            status: Some(status_to_proto(&status)),
        }))
    }

    async fn get_status(
        &self,
        _request: Request<proto::GetStatusRequest>,
    ) -> Result<Response<proto::GetStatusResponse>, Status> {
        Ok(Response::new(status_to_proto(&self.daemon.status())))
    }

    async fn set_frame_interval(
        &self,
        request: Request<proto::SetFrameIntervalRequest>,
    ) -> Result<Response<proto::SetFrameIntervalResponse>, Status> {
        let us = request.into_inner().interval_us;
        if us == 0 {
            return Err(Status::invalid_argument("interval_us must be > 0"));
        }
        self.daemon.set_frame_interval(Duration::from_micros(us))?;
        Ok(Response::new(proto::SetFrameIntervalResponse {
            interval_us: us,
        }))
    }

    async fn set_camera_settings(
        &self,
        request: Request<proto::SetCameraSettingsRequest>,
    ) -> Result<Response<proto::SetCameraSettingsResponse>, Status> {
        let changes = camera_settings_from_proto(request.into_inner().settings.unwrap_or_default());
        // Waits for the camera thread (between two frames).
        let outcome = self
            .blocking(move |d| d.set_camera_settings(changes))
            .await?;
        Ok(Response::new(proto::SetCameraSettingsResponse {
            settings: Some(camera_settings_to_proto(&outcome.settings)),
            applied: outcome.applied,
        }))
    }
}
