//! Frames service over real gRPC: pushing frames in, subscribing to streams, bad input,
//! slow subscribers, and TIFF replay.

mod common;

use std::io::Cursor;
use std::time::Duration;

use common::{SMALL, TestServer, stage, start, status, wait_for};
use scopepilot::proto::{
    FrameFormat, PixelType, PushFramesRequest, StopRequest, SubscribeFramesRequest,
};
use tonic::Code;

fn u16_frame(n: u64, w: u32, h: u32) -> (PushFramesRequest, Vec<u16>) {
    let pixels: Vec<u16> = (0..w * h)
        .map(|i| (i as u64 * 7 + n * 1000) as u16)
        .collect();
    (common::push_u16(n, w as usize, h as usize, &pixels), pixels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_frames_come_back_bit_exact_and_bad_frames_are_rejected() {
    let server = TestServer::start(SMALL).await;
    let mut acq = server.acquisition().await;
    let mut frames = server.frames().await;

    // Pushing before a push acquisition is a precondition failure.
    let (f, _) = u16_frame(0, 4, 4);
    let e = frames
        .push_frames(tokio_stream::iter([f]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");

    acq.start(start("push")).await.unwrap();
    let mut sub = frames
        .subscribe_frames(common::subscription("raw", FrameFormat::Full, 1, 16))
        .await
        .unwrap()
        .into_inner();
    let sent: Vec<_> = (0..5).map(|n| u16_frame(n, 32, 24)).collect();
    let reqs: Vec<_> = sent.iter().map(|(r, _)| r.clone()).collect();
    let resp = frames
        .push_frames(tokio_stream::iter(reqs))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.frames_accepted, 5);
    for (req, pixels) in &sent {
        let got = tokio::time::timeout(Duration::from_secs(10), sub.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(got.frame_number, req.frame_number);
        assert_eq!(got.timestamp_ns, req.timestamp_ns);
        assert_eq!(got.exposure_us, 5_000);
        assert_eq!(
            (got.width, got.height, got.pixel_type),
            (32, 24, PixelType::U16 as i32)
        );
        assert!(!got.synthetic);
        let back: Vec<u16> = got
            .data
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .collect();
        assert_eq!(&back, pixels, "frame {} pixels differ", req.frame_number);
    }

    // A stream whose third frame is malformed: the first two are kept.
    let (good0, _) = u16_frame(10, 32, 24);
    let (good1, _) = u16_frame(11, 32, 24);
    let (mut bad, _) = u16_frame(12, 32, 24);
    bad.data.truncate(100);
    let e = frames
        .push_frames(tokio_stream::iter([good0, good1, bad]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("frame 12") && e.message().contains("1536"),
        "{}",
        e.message()
    );
    let s = wait_for(&mut acq, "the good frames", |s| {
        stage(s, "raw").frames_out >= 7
    })
    .await;
    assert_eq!(s.frames_acquired, 7);
    assert_eq!(s.frames_rejected, 1);

    let mut cases = Vec::new();
    let (mut zero, _) = u16_frame(20, 4, 4);
    zero.width = 0;
    cases.push((zero, "non-zero"));
    let (mut huge, _) = u16_frame(21, 4, 4);
    huge.width = 1 << 20;
    cases.push((huge, "maximum side"));
    let (mut unknown, _) = u16_frame(22, 4, 4);
    unknown.pixel_type = 7;
    cases.push((unknown, "unknown pixel_type 7"));
    let (mut unset, _) = u16_frame(23, 4, 4);
    unset.pixel_type = 0;
    cases.push((unset, "pixel_type is not set"));
    for (req, want) in cases {
        let e = frames
            .push_frames(tokio_stream::iter([req]))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(
            e.message().contains(want),
            "{:?} should mention {want:?}",
            e.message()
        );
    }
    // The daemon is still running and counting.
    let s = status(&mut acq).await;
    assert_eq!(s.frames_acquired, 7);
    assert_eq!(s.frames_rejected, 5, "every refused frame is counted");
    assert_eq!(
        (s.width, s.height, s.pixel_type),
        (32, 24, PixelType::U16 as i32),
        "format of the pushed frames"
    );
    acq.stop(StopRequest {}).await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_get_full_data_or_8_bit_previews_of_any_stage() {
    let server = TestServer::start(SMALL).await;
    let mut acq = server.acquisition().await;
    let mut frames = server.frames().await;
    acq.start(start("")).await.unwrap();

    let mut full = frames
        .subscribe_frames(common::subscription("gaussian", FrameFormat::Full, 0, 0))
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    for _ in 0..3 {
        let f = full.message().await.unwrap().unwrap();
        assert_eq!(f.stage, "gaussian");
        assert_eq!(
            (f.width, f.height, f.pixel_type),
            (128, 128, PixelType::F32 as i32)
        );
        assert_eq!(f.data.len(), 128 * 128 * 4);
        let px: Vec<f32> = f
            .data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        // Smoothed camera counts sit around the calibrated offset (32979 ADU) and above.
        let mean = px.iter().sum::<f32>() / px.len() as f32;
        assert!(mean > 32_900.0 && mean < 40_000.0, "mean {mean}");
        if let Some(prev) = last {
            assert!(f.frame_number > prev);
        }
        last = Some(f.frame_number);
    }
    drop(full);

    let mut preview = frames
        .subscribe_frames(common::subscription("raw", FrameFormat::Preview8bit, 2, 0))
        .await
        .unwrap()
        .into_inner();
    let p = preview.message().await.unwrap().unwrap();
    assert_eq!(
        (p.width, p.height, p.pixel_type),
        (64, 64, PixelType::U8 as i32)
    );
    assert_eq!(p.data.len(), 64 * 64);
    assert!(p.display_min < p.display_max);
    assert!(
        p.data.contains(&0) && p.data.contains(&255),
        "the window spans the range"
    );

    let e = frames
        .subscribe_frames(common::subscription("denoised", FrameFormat::Full, 0, 0))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(
        e.message().contains("raw") && e.message().contains("gaussian"),
        "{}",
        e.message()
    );
    let e = frames
        .subscribe_frames(common::subscription("raw", FrameFormat::Full, 1000, 0))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = frames
        .subscribe_frames(common::subscription("raw", FrameFormat::Full, 1, 100_000))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_capped_subscriber_gets_fewer_frames_and_every_frame_left_out_is_counted() {
    let server = TestServer::start(SMALL).await;
    let mut acq = server.acquisition().await;
    let mut frames = server.frames().await;
    // Negative, not a number, endless, or so small that its interval would overflow a clock.
    for bad in [-1.0, f32::NAN, f32::INFINITY, 1e-30, 1e9] {
        let e = frames
            .subscribe_frames(SubscribeFramesRequest {
                stage: "raw".into(),
                max_fps: bad,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad}");
        assert!(e.message().contains("max_fps"), "{}", e.message());
    }
    acq.start(start("")).await.unwrap();
    // A 10 fps view of the 50 fps camera, and one client taking everything, at once.
    let mut capped = frames
        .subscribe_frames(SubscribeFramesRequest {
            stage: "raw".into(),
            queue_capacity: 64,
            max_fps: 10.0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut every = frames
        .subscribe_frames(common::subscription("raw", FrameFormat::Full, 1, 64))
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while got.len() < 8 {
        let f = capped.message().await.unwrap().unwrap();
        assert_eq!(f.subscriber_dropped, 0);
        got.push((f.frame_number, f.data.clone()));
        // The other subscriber is not capped; its frames share the same encoded bytes.
        let g = every.message().await.unwrap().unwrap();
        assert_eq!(g.subscriber_skipped, 0);
    }
    let s = status(&mut acq).await;
    let sub = s
        .subscribers
        .iter()
        .find(|x| x.max_fps == 10.0)
        .expect("listed with its cap");
    assert!(sub.frames_skipped > 0, "{sub:?}");
    // Stop the camera (counters freeze) and take what is still queued.
    let stopped = common::stop_acquisition(&mut acq).await;
    while let Ok(Some(f)) = tokio::time::timeout(Duration::from_millis(500), capped.message())
        .await
        .map(|m| m.unwrap())
    {
        got.push((f.frame_number, f.data.clone()));
    }
    assert!(got.windows(2).all(|w| w[1].0 > w[0].0));
    let sub = status(&mut acq)
        .await
        .subscribers
        .into_iter()
        .find(|x| x.max_fps == 10.0)
        .unwrap();
    assert_eq!(sub.frames_delivered, got.len() as u64);
    assert_eq!(sub.frames_dropped, 0);
    // Every raw frame from the first one it got to the last one acquired was either sent to
    // it or skipped by its cap: nothing else.
    assert_eq!(
        (stopped.frames_dropped_ring, stopped.frames_lost_no_buffer),
        (0, 0)
    );
    let last = stopped.frames_acquired - 1;
    assert_eq!(
        got.len() as u64 + sub.frames_skipped,
        last - got[0].0 + 1,
        "first {} last {last} got {} skipped {}",
        got[0].0,
        got.len(),
        sub.frames_skipped
    );
    assert!(got.iter().all(|(_, d)| d.len() == 128 * 128 * 2));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_loses_its_own_frames_only() {
    let server = TestServer::start(SMALL).await;
    let mut acq = server.acquisition().await;
    let mut frames = server.frames().await;
    acq.start(start("")).await.unwrap();
    // Subscribe and never read.
    let _stalled = frames
        .subscribe_frames(common::subscription("raw", FrameFormat::Full, 1, 2))
        .await
        .unwrap()
        .into_inner();
    let s = wait_for(&mut acq, "drops for the stalled subscriber", |s| {
        s.subscribers.iter().any(|sub| sub.frames_dropped >= 20)
    })
    .await;
    let sub = &s.subscribers[0];
    assert_eq!(sub.stage, "raw");
    assert_eq!(sub.queue_capacity, 2);
    // The pipeline kept going and lost nothing on its way.
    let stopped = common::stop_acquisition(&mut acq).await;
    assert!(stage(&stopped, "gaussian").frames_out >= 20);
    assert_eq!(stopped.frames_dropped_ring, 0);
    assert_eq!(stopped.frames_lost_no_buffer, 0);
    server.stop().await;
}

fn write_tiff(path: &std::path::Path, pages: &[Vec<u16>], w: u32, h: u32) {
    let mut buf = Cursor::new(Vec::new());
    let mut enc = tiff::encoder::TiffEncoder::new(&mut buf).unwrap();
    for p in pages {
        enc.write_image::<tiff::encoder::colortype::Gray16>(w, h, p)
            .unwrap();
    }
    std::fs::write(path, buf.into_inner()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiff_stacks_replay_through_the_pipeline_and_corrupt_files_are_refused() {
    let dir = std::env::temp_dir().join(format!("scopepilot-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.tif");
    let pages: Vec<Vec<u16>> = (0..4u16).map(|k| vec![100 * (k + 1); 16 * 8]).collect();
    write_tiff(&good, &pages, 16, 8);
    let corrupt = dir.join("corrupt.tif");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&corrupt, &bytes[..bytes.len() / 3]).unwrap();

    for (path, ok) in [(&good, true), (&corrupt, false)] {
        let config = format!(
            "{SMALL}\n[source.replay]\npath = {:?}\nframe_rate_hz = 200.0\nloop = false\n",
            path.display().to_string()
        );
        let server = TestServer::start(&config).await;
        let mut acq = server.acquisition().await;
        if !ok {
            let e = acq.start(start("replay")).await.unwrap_err();
            assert_eq!(e.code(), Code::FailedPrecondition);
            assert!(e.message().contains("corrupt.tif"), "{}", e.message());
            assert_eq!(status(&mut acq).await.state, 1, "still idle and serving");
            server.stop().await;
            continue;
        }
        let mut frames = server.frames().await;
        let mut sub = frames
            .subscribe_frames(common::subscription("raw", FrameFormat::Full, 1, 16))
            .await
            .unwrap()
            .into_inner();
        acq.start(start("replay")).await.unwrap();
        for (k, page) in pages.iter().enumerate() {
            let f = sub.message().await.unwrap().unwrap();
            assert_eq!(f.frame_number, k as u64);
            let back: Vec<u16> = f
                .data
                .chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
                .collect();
            assert_eq!(&back, page);
        }
        let s = wait_for(&mut acq, "the end of the stack", |s| s.source_finished).await;
        assert_eq!(s.frames_acquired, 4);
        server.stop().await;
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_streams_with_unavailable_instead_of_hanging() {
    let server = TestServer::start(SMALL).await;
    let mut frames = server.frames().await;
    // Idle acquisition: this subscription would wait forever for a frame.
    let mut sub = frames
        .subscribe_frames(common::subscription("gaussian", FrameFormat::Full, 1, 1))
        .await
        .unwrap()
        .into_inner();
    let reader = tokio::spawn(async move { sub.message().await });
    server.stop().await;
    let e = reader.await.unwrap().unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(e.message().contains("shutting down"));
}
