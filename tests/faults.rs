//! Faults while acquiring, over real gRPC: clients that vanish mid-stream (pushing and
//! subscribing), inference that fails on some frames, and fifty subscribers at once. After
//! each, the daemon still serves and its counters add up exactly.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{SMALL, TestServer, stage, start, status, wait_for};
use scopepilot::proto::{Frame, FrameFormat, PushFramesRequest};
use tokio_stream::wrappers::ReceiverStream;

/// A 32x32 u16 frame numbered `n`; with `trap`, one pixel is 60000, which makes the
/// `box3-trap` test model fail inference (values >= 50000, see scripts/make_test_models.py).
fn frame(n: u64, trap: bool) -> PushFramesRequest {
    let mut pixels: Vec<u16> = (0..32 * 32).map(|i| (i * 13 % 997 + 100) as u16).collect();
    if trap {
        pixels[100] = 60_000;
    }
    common::push_u16(n, 32, 32, &pixels)
}

/// Every frame of `stream` until it has been quiet for a second.
async fn drain(stream: &mut tonic::Streaming<Frame>) -> Vec<Frame> {
    let mut got = Vec::new();
    while let Ok(Some(Ok(f))) = tokio::time::timeout(Duration::from_secs(1), stream.message())
        .await
        .map(|r| r.transpose())
    {
        got.push(f);
    }
    got
}

/// Every frame of `stream`, waiting up to 30 s for the first.
async fn drain_after_first(stream: &mut tonic::Streaming<Frame>) -> Vec<Frame> {
    let mut got = vec![common::next(stream, 30).await];
    got.extend(drain(stream).await);
    got
}

fn numbers(frames: &[Frame]) -> Vec<u64> {
    frames.iter().map(|f| f.frame_number).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inference_that_fails_on_some_frames_skips_them_and_the_pipeline_goes_on() {
    let trap = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/box3-trap.toml");
    let config = format!(
        r#"
[api]
listen = "127.0.0.1:0"
[acquisition]
autostart = false
ring_capacity = 64
[source]
kind = "push"
[source.push]
pool_frames = 128
[[stages]]
name = "denoised"
kind = "denoise"
input = "raw"
queue = {{ capacity = 64, policy = "block" }}
params = {{ model = {trap:?}, pool_frames = 128 }}
[[stages]]
name = "gaussian"
kind = "gaussian"
input = "raw"
queue = {{ capacity = 64, policy = "block" }}
"#,
        trap = trap.display().to_string()
    );
    let server = TestServer::start(&config).await;
    let mut acq = server.acquisition().await;
    let mut frames = server.frames().await;
    acq.start(start("push")).await.unwrap();
    let mut denoised = server.subscribe_full("denoised", 64).await;
    // Read all along: frames held by a subscriber hold the stage's output buffers.
    let denoised = tokio::spawn(async move { drain_after_first(&mut denoised).await });

    // 30 frames; every fifth (2, 7, 12, ...) makes ONNX Runtime fail, then 5 good ones.
    let bad = |n: u64| n < 30 && n % 5 == 2;
    let sent: Vec<_> = (0..35).map(|n| frame(n, bad(n))).collect();
    let resp = frames
        .push_frames(tokio_stream::iter(sent))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.frames_accepted, 35, "{resp:?}");
    let s = wait_for(&mut acq, "every frame through both stages", |s| {
        let d = stage(s, "denoised");
        d.frames_out + d.errors == 35 && stage(s, "gaussian").frames_out == 35
    })
    .await;

    // The stage reports the failures and skips exactly those frames.
    let d = stage(&s, "denoised");
    assert_eq!(
        (d.frames_in, d.errors, d.frames_out, d.frames_dropped),
        (35, 6, 29, 0)
    );
    let good: Vec<u64> = (0..35).filter(|&n| !bad(n)).collect();
    assert_eq!(numbers(&denoised.await.unwrap()), good);
    // The other branch never noticed, nothing was lost on the way in, and the daemon serves.
    assert_eq!(stage(&s, "gaussian").errors, 0);
    assert_eq!(
        (
            s.frames_acquired,
            s.frames_dropped_ring,
            s.frames_lost_no_buffer
        ),
        (35, 0, 0)
    );
    let stopped = common::stop_acquisition(&mut acq).await;
    assert_eq!(stage(&stopped, "denoised").errors, 6);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pusher_that_disconnects_mid_stream_loses_nothing_it_sent_and_others_can_push() {
    let config = r#"
[api]
listen = "127.0.0.1:0"
[acquisition]
autostart = false
ring_capacity = 64
[source]
kind = "push"
[[stages]]
name = "copy"
kind = "passthrough"
queue = { capacity = 64, policy = "block" }
"#;
    let server = TestServer::start(config).await;
    let mut acq = server.acquisition().await;
    acq.start(start("push")).await.unwrap();
    let mut copy = server.subscribe_full("copy", 64).await;

    // A client on its own connection pushes 10 frames and then vanishes: its call is
    // cancelled and its connection closed without ever ending the stream.
    let channel = server.channel().await;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let call = tokio::spawn(async move {
        scopepilot::proto::frames_client::FramesClient::new(channel)
            .push_frames(ReceiverStream::new(rx))
            .await
    });
    for n in 0..10 {
        tx.send(frame(n, false)).await.unwrap();
    }
    wait_for(&mut acq, "10 frames accepted", |s| s.frames_acquired == 10).await;
    call.abort();
    let _ = call.await;
    drop(tx);

    // Another client pushes 5 more, and they go through.
    let more: Vec<_> = (10..15).map(|n| frame(n, false)).collect();
    let resp = server
        .frames()
        .await
        .push_frames(tokio_stream::iter(more))
        .await
        .expect("the push source is free again")
        .into_inner();
    assert_eq!(resp.frames_accepted, 5);
    let s = wait_for(&mut acq, "15 frames through", |s| {
        stage(s, "copy").frames_out == 15
    })
    .await;
    assert_eq!((s.frames_acquired, s.frames_rejected), (15, 0));
    assert_eq!((s.frames_dropped_ring, s.frames_lost_no_buffer), (0, 0));
    assert_eq!(
        numbers(&drain(&mut copy).await),
        (0..15).collect::<Vec<_>>()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_disconnects_mid_stream_is_removed_and_costs_others_nothing() {
    let server = TestServer::start(SMALL).await;
    let mut acq = server.acquisition().await;
    acq.start(start("")).await.unwrap();
    let mut staying = server.subscribe_full("raw", 64).await;
    // It reads all along, while the other one comes and goes.
    let staying = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < 60 {
            got.push(common::next(&mut staying, 10).await);
        }
        (got, staying)
    });
    // The leaver reads a few frames on its own connection, then the connection goes away.
    let channel = server.channel().await;
    let mut leaver = scopepilot::proto::frames_client::FramesClient::new(channel)
        .subscribe_frames(common::subscription("raw", FrameFormat::Full, 1, 4))
        .await
        .unwrap()
        .into_inner();
    for _ in 0..5 {
        common::next(&mut leaver, 10).await;
    }
    assert_eq!(status(&mut acq).await.subscribers.len(), 2);
    drop(leaver);
    wait_for(&mut acq, "the server to drop the leaver", |s| {
        s.subscribers.len() == 1
    })
    .await;

    // The staying subscriber saw every frame, before and after, with no gap and no drop.
    let (mut got, mut staying) = staying.await.unwrap();
    let stopped = common::stop_acquisition(&mut acq).await;
    got.extend(drain(&mut staying).await);
    let n = numbers(&got);
    assert!(n.windows(2).all(|w| w[1] == w[0] + 1), "no gap: {n:?}");
    assert_eq!(got.last().unwrap().subscriber_dropped, 0);
    assert_eq!(
        *n.last().unwrap() + 1,
        stopped.frames_acquired,
        "delivered up to the last frame acquired"
    );
    assert_eq!(
        (stopped.frames_dropped_ring, stopped.frames_lost_no_buffer),
        (0, 0)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_subscribers_get_frames_and_the_camera_path_loses_none() {
    let server = TestServer::start(SMALL).await;
    let mut acq = server.acquisition().await;
    acq.start(start("")).await.unwrap();
    // Five connections, ten streams each, everyone reading as fast as it can.
    let mut clients = Vec::new();
    for _ in 0..5 {
        let channel = server.channel().await;
        for _ in 0..10 {
            let mut frames = scopepilot::proto::frames_client::FramesClient::new(channel.clone());
            let mut sub = frames
                .subscribe_frames(common::subscription("raw", FrameFormat::Full, 1, 8))
                .await
                .unwrap()
                .into_inner();
            clients.push(tokio::spawn(async move {
                let mut got = Vec::new();
                while got.len() < 50 {
                    got.push(common::next(&mut sub, 30).await);
                }
                got
            }));
        }
    }
    assert_eq!(status(&mut acq).await.subscribers.len(), 50);
    // Their threads yield the CPU to the camera path (Linux niceness, read from /proc).
    let nices = scopepilot::thread_nice::of_threads_named("subscriber-");
    assert!(nices.len() >= 50, "{} subscriber threads", nices.len()); // other tests' too
    assert!(
        nices
            .iter()
            .all(|&n| n == scopepilot::thread_nice::SUBSCRIBER_NICE),
        "{nices:?}"
    );
    for client in clients {
        let got = client.await.unwrap();
        let n = numbers(&got);
        assert!(n.windows(2).all(|w| w[1] > w[0]), "in order: {n:?}");
        // Whatever a subscriber missed, the server counted for it. A message carries the count
        // read just after its frame left the queue, so an eviction at that very moment shows
        // one message early: the difference of two counts is within one of the gaps between.
        let gaps: u64 = n.windows(2).map(|w| w[1] - w[0] - 1).sum();
        let dropped = got.last().unwrap().subscriber_dropped - got[0].subscriber_dropped;
        assert!(
            dropped.abs_diff(gaps) <= 1,
            "{gaps} frames missing from a subscriber's stream, {dropped} counted as its drops"
        );
    }
    wait_for(&mut acq, "every subscriber gone", |s| {
        s.subscribers.is_empty()
    })
    .await;
    let stopped = common::stop_acquisition(&mut acq).await;
    assert!(stopped.frames_acquired >= 50);
    assert_eq!(
        (stopped.frames_dropped_ring, stopped.frames_lost_no_buffer),
        (0, 0)
    );
    server.stop().await;
}
