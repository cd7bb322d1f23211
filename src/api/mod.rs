//! The gRPC control API: `scopepilot.v1.Acquisition`, `scopepilot.v1.Frames`,
//! `scopepilot.v1.Models`, `scopepilot.v1.Recording`, `scopepilot.v1.Events` and
//! `scopepilot.v1.Rules`, plus
//! `grpc.health.v1` health and server reflection, served by tonic over a TCP listener.

mod acquisition;
mod auth;
mod convert;
mod events;
mod frames;
mod models;
mod recording;
mod rules;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::access::Security;
use crate::daemon::Daemon;
use crate::proto::acquisition_server::AcquisitionServer;
use crate::proto::events_server::EventsServer;
use crate::proto::frames_server::FramesServer;
use crate::proto::models_server::ModelsServer;
use crate::proto::recording_server::RecordingServer;
use crate::proto::rules_server::RulesServer;

pub use acquisition::AcquisitionApi;
pub use auth::{AuthLayer, denied_status};
pub use events::EventsApi;
pub use frames::FramesApi;
pub(crate) use frames::pushed_frame;
pub use models::ModelsApi;
pub use recording::RecordingApi;
pub use rules::RulesApi;

/// How long shutdown waits for open streams to finish before closing them.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Largest gRPC message accepted or sent (a 2048x2048 f32 frame is 16 MiB).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Accepted connections with Nagle's algorithm off: small messages (events, actions,
/// acknowledgements) leave at once instead of waiting for the peer's delayed ACK (measured:
/// 20 ms added to every action without it).
fn incoming(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    TcpListenerStream::new(listener).map(|conn| {
        let conn = conn?;
        conn.set_nodelay(true)?;
        Ok(conn)
    })
}

/// Serve the API on `listener` until `shutdown` completes, over TLS when `security` has an
/// identity, letting through the calls its tokens allow. Open streams (subscriptions,
/// pushes) then end with `UNAVAILABLE`, so that shutdown never waits on a client.
pub async fn serve(
    daemon: Arc<Daemon>,
    security: Security,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = closing_tx.send(true);
    };
    let mut closing_for_grace = closing.clone();
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<AcquisitionServer<AcquisitionApi>>()
        .await;
    health.set_serving::<FramesServer<FramesApi>>().await;
    health.set_serving::<ModelsServer<ModelsApi>>().await;
    health.set_serving::<RecordingServer<RecordingApi>>().await;
    health.set_serving::<EventsServer<EventsApi>>().await;
    health.set_serving::<RulesServer<RulesApi>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the embedded descriptor set is valid");
    let acquisition = AcquisitionServer::new(AcquisitionApi::new(daemon.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let models = ModelsServer::new(ModelsApi::new(daemon.clone()));
    let recording = RecordingServer::new(RecordingApi::new(daemon.clone()));
    let events = EventsServer::new(EventsApi::new(daemon.clone(), closing.clone()));
    let rules = RulesServer::new(RulesApi::new(daemon.clone()));
    let frames = FramesServer::new(FramesApi::new(daemon, closing))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &security.tls {
        builder = builder.tls_config(tls.grpc())?;
    }
    let server = builder
        .layer(AuthLayer::new(security.access))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(acquisition)
        .add_service(frames)
        .add_service(models)
        .add_service(recording)
        .add_service(events)
        .add_service(rules)
        .serve_with_incoming_shutdown(incoming(listener), shutdown);
    // A client that stopped reading cannot receive the end of its stream (HTTP/2 flow
    // control), so graceful shutdown is bounded.
    let grace = async move {
        let _ = closing_for_grace.wait_for(|c| *c).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        result = server => result,
        _ = grace => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "clients still connected after the shutdown grace period; closing anyway");
            Ok(())
        }
    }
}
