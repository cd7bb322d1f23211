//! Closed-loop latency: from the arrival of the frame that holds an event to the action it
//! triggers reaching a gRPC subscriber, split into detection (arrival -> detection done) and
//! the rest (event publication, rule, action, gRPC, the client's receipt).
//!
//! A real daemon with the real gRPC server on loopback; a client pushes 512x512 u16 frames at
//! 50 fps through `PushFrames`; a `roi_mean` detect stage sees a bright corner every 4th frame;
//! a rule emits an action for each; the client subscribed to `SubscribeActions` timestamps each
//! action as it arrives. All times are Unix times from the same machine.
//!
//! With `CLOSED_LOOP_MODEL=<package>` (default `models/detect-divisions` when present) a second
//! run puts a learned detect stage (score map + peaks) on the same frames and reports its
//! per-frame detection time: the learned detector's share of the loop.
//!
//! `cargo bench --bench closed_loop -- --bench` (200 events); without `--bench` a 10-event
//! smoke round.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use scopepilot::config::Config;
use scopepilot::daemon::Daemon;
use scopepilot::proto::acquisition_client::AcquisitionClient;
use scopepilot::proto::events_client::EventsClient;
use scopepilot::proto::frames_client::FramesClient;
use scopepilot::proto::{
    GetStatusRequest, PixelType, PushFramesRequest, StartRequest, SubscribeActionsRequest,
};
use support::{env_or, quantile_ms};

const SIDE: usize = 512;
const EVERY: u64 = 4;

fn unix_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

fn config(model: Option<&str>) -> String {
    let mut text = String::from(
        r#"
[api]
listen = "127.0.0.1:0"
[acquisition]
autostart = false
[source]
kind = "push"
[inference]
intra_threads = 2
spinning = false
[[stages]]
name = "corner"
kind = "detect"
input = "raw"
queue = { capacity = 16, policy = "drop_oldest" }
params = { detector = "roi_mean", roi = [0, 0, 32, 32], threshold = 50000.0 }
[[rules]]
name = "mark"
when = { detector = "corner" }
actions = [{ type = "emit", name = "mark", params = { frame = "{frame}" } }]
"#,
    );
    if let Some(m) = model {
        text.push_str(&format!(
            "[[stages]]\nname = \"learned\"\nkind = \"detect\"\ninput = \"raw\"\nqueue = {{ capacity = 4, policy = \"drop_oldest\" }}\nparams = {{ detector = \"model\", model = \"{m}\" }}\n"
        ));
    }
    text
}

fn frames(count: u64) -> Vec<PushFramesRequest> {
    let base = support::simulated_frames(SIDE, 8);
    (0..count)
        .map(|n| {
            let mut px = base[(n % 8) as usize].clone();
            if n % EVERY == 1 {
                for y in 0..32 {
                    px[y * SIDE..y * SIDE + 32].fill(60_000);
                }
            }
            PushFramesRequest {
                width: SIDE as u32,
                height: SIDE as u32,
                pixel_type: PixelType::U16 as i32,
                frame_number: n,
                timestamp_ns: n * 20_000_000,
                exposure_us: 10_000,
                data: px.iter().flat_map(|p| p.to_le_bytes()).collect(),
            }
        })
        .collect()
}

struct Split {
    detection: Vec<Duration>,
    rest: Vec<Duration>,
    total: Vec<Duration>,
}

async fn run(events: u64, model: Option<&str>) -> (Split, Option<(f64, f64)>) {
    let config = Config::from_toml(&config(model)).unwrap_or_else(|e| panic!("{e}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let daemon = Daemon::new(config).unwrap_or_else(|e| panic!("{e}"));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let open = scopepilot::access::Security::default(); // no tokens, no TLS
    let server = tokio::spawn(scopepilot::api::serve(
        daemon.clone(),
        open,
        listener,
        async {
            let _ = stop_rx.await;
        },
    ));
    let url = format!("http://{addr}");
    let channel = loop {
        if let Ok(c) = tonic::transport::Channel::from_shared(url.clone())
            .unwrap()
            .connect()
            .await
        {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut acq = AcquisitionClient::new(channel.clone());
    let mut actions = EventsClient::new(channel.clone())
        .subscribe_actions(SubscribeActionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    acq.start(StartRequest {
        source: "push".into(),
    })
    .await
    .unwrap();
    let count = events * EVERY + 2;
    let to_push = frames(count);
    // Frames go out at 50 fps: a producer sends each at its tick into the client stream.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for f in to_push {
            tick.tick().await;
            if tx.send(f).await.is_err() {
                break;
            }
        }
    });
    let pusher = tokio::spawn(async move {
        FramesClient::new(channel)
            .max_encoding_message_size(64 << 20)
            .push_frames(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    let mut split = Split {
        detection: Vec::new(),
        rest: Vec::new(),
        total: Vec::new(),
    };
    while (split.total.len() as u64) < events {
        let Ok(Ok(Some(a))) =
            tokio::time::timeout(Duration::from_secs(10), actions.message()).await
        else {
            break;
        };
        let received = unix_ns();
        let Some(e) = a.event else { continue };
        let ns = |v: i64| Duration::from_nanos(v.max(0) as u64);
        split
            .detection
            .push(ns(e.detected_unix_ns - e.frame_arrival_unix_ns));
        split.rest.push(ns(received - e.detected_unix_ns));
        split.total.push(ns(received - e.frame_arrival_unix_ns));
    }
    let _ = pusher.await;
    let status = acq
        .get_status(GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let learned = status
        .stages
        .iter()
        .find(|s| s.name == "learned")
        .map(|s| (s.process_p50_us / 1e3, s.process_p99_us / 1e3));
    let dropped: u64 = status.stages.iter().map(|s| s.frames_dropped).sum();
    if dropped > 0 {
        eprintln!("note: {dropped} frames dropped by stage queues in this run");
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    let d = daemon.clone();
    let _ = tokio::task::spawn_blocking(move || d.stop()).await;
    (split, learned)
}

fn report(name: &str, v: &mut [Duration]) {
    v.sort();
    if v.is_empty() {
        println!("{name:<44} no samples");
        return;
    }
    println!(
        "{name:<44} p50 {:>8.3} ms   p99 {:>8.3} ms   (n = {})",
        quantile_ms(v, 0.5),
        quantile_ms(v, 0.99),
        v.len()
    );
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let events: u64 = env_or("CLOSED_LOOP_EVENTS", if full { 200 } else { 10 });
    let model = std::env::var("CLOSED_LOOP_MODEL").ok().or_else(|| {
        let p = scopepilot::install::locate(std::path::Path::new("models/detect-divisions"));
        p.exists().then(|| p.display().to_string())
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (mut split, _) = rt.block_on(run(events, None));
    println!("closed loop, {SIDE}x{SIDE} u16 pushed at 50 fps, roi_mean detector, {events} events");
    report("detection (arrival -> detected)", &mut split.detection);
    report("rest (detected -> action at gRPC client)", &mut split.rest);
    report("total (arrival -> action at gRPC client)", &mut split.total);
    if let Some(m) = model {
        let (mut split, learned) = rt.block_on(run(events, Some(&m)));
        println!("same, with a learned detect stage ({m}) beside it");
        report("rest (detected -> action at gRPC client)", &mut split.rest);
        if let Some((p50, p99)) = learned {
            println!(
                "{:<44} p50 {p50:>8.3} ms   p99 {p99:>8.3} ms",
                "learned detection per frame (stage process)"
            );
        }
    }
}
