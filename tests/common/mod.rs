//! Test harness: the real gRPC server on an ephemeral loopback port, and tonic clients.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use scopepilot::config::Config;
use scopepilot::daemon::Daemon;
use scopepilot::proto::acquisition_client::AcquisitionClient;
use scopepilot::proto::events_client::EventsClient;
use scopepilot::proto::frames_client::FramesClient;
use scopepilot::proto::models_client::ModelsClient;
use scopepilot::proto::recording_client::RecordingClient;
use scopepilot::proto::rules_client::RulesClient;
use scopepilot::proto::{
    FrameFormat, GetStatusRequest, GetStatusResponse, PixelType, PushFramesRequest, StartRequest,
    SubscribeFramesRequest,
};
use tokio::sync::oneshot;
use tonic::transport::Channel;

/// A running server; shuts down (and stops acquisition) when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    pub daemon: std::sync::Arc<Daemon>,
}

/// A small, fast configuration: simulated 128x128 at 50 fps through a gaussian stage.
pub const SMALL: &str = r#"
[api]
listen = "127.0.0.1:0"
[acquisition]
autostart = false
ring_capacity = 16
[source.simulated]
width = 128
height = 128
frame_rate_hz = 50.0
[[stages]]
name = "gaussian"
kind = "gaussian"
input = "raw"
queue = { capacity = 4, policy = "drop_oldest" }
params = { sigma = 1.5 }
"#;

impl TestServer {
    pub async fn start(config_toml: &str) -> Self {
        let config = Config::from_toml(config_toml).expect("test config is valid");
        let listener = tokio::net::TcpListener::bind(config.listen_addr().unwrap())
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(addr.ip().is_loopback());
        let security = scopepilot::access::Security::from_config(&config.security)
            .expect("tokens and certificates load");
        let daemon = Daemon::new(config).expect("daemon starts");
        let (tx, rx) = oneshot::channel::<()>();
        let d = daemon.clone();
        let task = tokio::spawn(async move {
            scopepilot::api::serve(d, security, listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Self {
            addr,
            shutdown: Some(tx),
            task: Some(task),
            daemon,
        }
    }

    pub async fn channel(&self) -> Channel {
        let url = format!("http://{}", self.addr);
        for _ in 0..50 {
            if let Ok(c) = Channel::from_shared(url.clone()).unwrap().connect().await {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("server at {url} did not accept connections");
    }

    pub async fn acquisition(&self) -> AcquisitionClient<Channel> {
        AcquisitionClient::new(self.channel().await)
    }

    pub async fn frames(&self) -> FramesClient<Channel> {
        FramesClient::new(self.channel().await).max_decoding_message_size(64 << 20)
    }

    /// A subscription to full frames of `stream`, with a queue of `queue` frames.
    pub async fn subscribe_full(
        &self,
        stream: &str,
        queue: u32,
    ) -> tonic::Streaming<scopepilot::proto::Frame> {
        self.frames()
            .await
            .subscribe_frames(subscription(stream, FrameFormat::Full, 1, queue))
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn models(&self) -> ModelsClient<Channel> {
        ModelsClient::new(self.channel().await)
    }

    pub async fn recording(&self) -> RecordingClient<Channel> {
        RecordingClient::new(self.channel().await)
    }

    pub async fn events(&self) -> EventsClient<Channel> {
        EventsClient::new(self.channel().await)
    }

    pub async fn rules(&self) -> RulesClient<Channel> {
        RulesClient::new(self.channel().await)
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
        let d = self.daemon.clone();
        let _ = tokio::task::spawn_blocking(move || d.stop()).await;
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = self.daemon.stop();
    }
}

pub fn start(source: &str) -> StartRequest {
    StartRequest {
        source: source.into(),
    }
}

pub async fn status(client: &mut AcquisitionClient<Channel>) -> GetStatusResponse {
    client
        .get_status(GetStatusRequest {})
        .await
        .unwrap()
        .into_inner()
}

/// Poll `GetStatus` until `cond` holds (functional wait, not a timing assertion).
pub async fn wait_for(
    client: &mut AcquisitionClient<Channel>,
    what: &str,
    cond: impl Fn(&GetStatusResponse) -> bool,
) -> GetStatusResponse {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = status(client).await;
        if cond(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last status: {s:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn stage<'a>(s: &'a GetStatusResponse, name: &str) -> &'a scopepilot::proto::StageStatus {
    s.stages
        .iter()
        .find(|st| st.name == name)
        .unwrap_or_else(|| panic!("no stage {name} in {s:#?}"))
}

/// A pushed u16 frame (`pixels` row-major, `w` x `h`), numbered `n`.
pub fn push_u16(n: u64, w: usize, h: usize, pixels: &[u16]) -> PushFramesRequest {
    PushFramesRequest {
        width: w as u32,
        height: h as u32,
        pixel_type: PixelType::U16 as i32,
        frame_number: n,
        timestamp_ns: n * 1_000_000,
        exposure_us: 5_000,
        data: pixels.iter().flat_map(|p| p.to_le_bytes()).collect(),
    }
}

/// A subscription request without percentile overrides.
pub fn subscription(
    stage: &str,
    format: FrameFormat,
    downsample: u32,
    queue: u32,
) -> SubscribeFramesRequest {
    SubscribeFramesRequest {
        stage: stage.into(),
        format: format as i32,
        downsample,
        queue_capacity: queue,
        low_percentile: 0.0,
        high_percentile: 0.0,
        max_fps: 0.0,
    }
}

/// Stop the acquisition and return its final status (after the pipeline drained).
pub async fn stop_acquisition(client: &mut AcquisitionClient<Channel>) -> GetStatusResponse {
    client
        .stop(scopepilot::proto::StopRequest {})
        .await
        .expect("stop")
        .into_inner()
        .status
        .expect("stop returns the final status")
}

/// The next item of a gRPC stream, failing after `secs` seconds.
pub async fn next<T>(stream: &mut tonic::Streaming<T>, secs: u64) -> T {
    tokio::time::timeout(Duration::from_secs(secs), stream.message())
        .await
        .expect("an item in time")
        .expect("stream ok")
        .expect("stream open")
}

/// Subscriptions to every action and to the events `request` selects.
pub async fn subscribe_actions_and_events(
    events: &mut EventsClient<Channel>,
    request: scopepilot::proto::SubscribeEventsRequest,
) -> (
    tonic::Streaming<scopepilot::proto::Action>,
    tonic::Streaming<scopepilot::proto::Event>,
) {
    let actions = events
        .subscribe_actions(scopepilot::proto::SubscribeActionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let found = events.subscribe_events(request).await.unwrap().into_inner();
    (actions, found)
}

/// A fresh, empty directory under the system temp dir for one test.
pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("scopepilot-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
