//! The gRPC control API: `scopepilot.v1.Acquisition` and `scopepilot.v1.Frames`, plus
//! `grpc.health.v1` health and server reflection, served by tonic over a TCP listener.

mod acquisition;
mod convert;
mod frames;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::daemon::Daemon;
use crate::proto::acquisition_server::AcquisitionServer;
use crate::proto::frames_server::FramesServer;

pub use acquisition::AcquisitionApi;
pub use frames::FramesApi;

/// Largest gRPC message accepted or sent (a 2048x2048 f32 frame is 16 MiB).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Serve the API on `listener` until `shutdown` completes.
pub async fn serve(
    daemon: Arc<Daemon>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<AcquisitionServer<AcquisitionApi>>()
        .await;
    health.set_serving::<FramesServer<FramesApi>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the embedded descriptor set is valid");
    let acquisition = AcquisitionServer::new(AcquisitionApi::new(daemon.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let frames = FramesServer::new(FramesApi::new(daemon))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(acquisition)
        .add_service(frames)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
}
