//! Recording service over real gRPC: start/stop, status, and every refusal leaving the
//! acquisition running.

mod common;

use common::{SMALL, TestServer, start, status, temp_dir, wait_for};
use scopepilot::proto::{
    AcquisitionState, RecordingState, StartRecordingRequest, StopRecordingRequest, StopRequest,
};
use tonic::Code;

fn config(root: &std::path::Path) -> String {
    format!(
        "{SMALL}\n[recording]\nroot = {:?}\ncheckpoint_ms = 50\n",
        root.display().to_string()
    )
}

fn request(name: &str, streams: &[&str]) -> StartRecordingRequest {
    StartRecordingRequest {
        name: name.into(),
        streams: streams.iter().map(|s| s.to_string()).collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_writes_frames_and_reports_them() {
    let root = temp_dir("rec-api");
    let server = TestServer::start(&config(&root)).await;
    let mut acq = server.acquisition().await;
    let mut rec = server.recording().await;

    // Not acquiring: refused.
    let err = rec
        .start_recording(request("early", &[]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

    acq.start(start("")).await.unwrap();
    let started = rec
        .start_recording(request("sim", &["raw", "gaussian"]))
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(started.state, RecordingState::Recording as i32);
    assert_eq!(started.path, root.join("sim.zarr").display().to_string());

    // A second recording while one is in progress: refused.
    let err = rec
        .start_recording(request("other", &[]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

    let s = wait_for(&mut acq, "frames recorded", |s| {
        s.recording.as_ref().is_some_and(|r| r.frames_written >= 20)
    })
    .await;
    let r = s.recording.unwrap();
    assert_eq!(r.name, "sim");
    assert_eq!(r.queue_budget_bytes, 512 << 20);
    assert_eq!(r.streams.len(), 2);

    let fin = rec
        .stop_recording(StopRecordingRequest {})
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(fin.state, RecordingState::Stopped as i32, "{fin:?}");
    assert_eq!(fin.frames_not_recorded, 0);
    assert_eq!(fin.queue_frames, 0);
    assert_eq!(
        fin.bytes_written,
        fin.streams.iter().map(|s| s.bytes_written).sum::<u64>()
    );
    assert!(fin.throughput_bytes_per_s > 0.0);
    let raw = &fin.streams[0];
    assert_eq!(raw.bytes_written, raw.frames_written * 128 * 128 * 2);
    let g = &fin.streams[1];
    assert_eq!(
        g.bytes_written,
        g.frames_written * 128 * 128 * 4,
        "gaussian is f32"
    );

    // The store exposes exactly the frames reported.
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("sim.zarr/raw/0/zarr.json")).unwrap())
            .unwrap();
    assert_eq!(meta["shape"][0], raw.frames_written);
    assert_eq!(meta["data_type"], "uint16");

    // Stopped already: nothing to stop. The name is taken now.
    let err = rec
        .stop_recording(StopRecordingRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = rec.start_recording(request("sim", &[])).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert!(err.message().contains("sim.zarr"), "{}", err.message());

    for (name, streams) in [
        ("bad/name", vec![]),
        ("", vec![]),
        ("ok", vec!["nope"]),
        ("ok", vec!["raw", "raw"]),
    ] {
        let err = rec
            .start_recording(request(name, &streams))
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Code::InvalidArgument,
            "{name:?} {streams:?}: {err:?}"
        );
    }
    assert_eq!(
        status(&mut acq).await.state,
        AcquisitionState::Running as i32
    );
    acq.stop(StopRequest {}).await.unwrap();
    server.stop().await;
    std::fs::remove_dir_all(&root).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_root_is_a_failed_precondition_naming_the_path() {
    let dir = temp_dir("rec-unwritable");
    // A regular file where the recording root should be (root bypasses permission bits).
    let root = dir.join("not-a-dir");
    std::fs::write(&root, b"x").unwrap();
    let server = TestServer::start(&config(&root)).await;
    let mut acq = server.acquisition().await;
    let mut rec = server.recording().await;
    acq.start(start("")).await.unwrap();
    let err = rec.start_recording(request("x", &[])).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("not-a-dir"), "{}", err.message());
    let s = wait_for(&mut acq, "acquisition still running", |s| {
        s.state == AcquisitionState::Running as i32 && s.frames_acquired > 3
    })
    .await;
    assert!(s.recording.is_none());
    acq.stop(StopRequest {}).await.unwrap();
    server.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_over_the_memory_budget_are_counted_not_recorded_and_acquisition_goes_on() {
    let root = temp_dir("rec-budget");
    // 1024x1024 u16 frames are 2 MiB: none fits a 1 MiB budget.
    let cfg = format!(
        "{SMALL}\n[recording]\nroot = {:?}\nmemory_budget_mib = 1\n",
        root.display().to_string()
    );
    let server = TestServer::start(&cfg).await;
    let mut acq = server.acquisition().await;
    let mut rec = server.recording().await;
    let mut frames = server.frames().await;
    acq.start(start("push")).await.unwrap();
    rec.start_recording(request("tight", &[])).await.unwrap();
    let pixels = vec![7u16; 1024 * 1024];
    let reqs: Vec<_> = (0..5)
        .map(|n| common::push_u16(n, 1024, 1024, &pixels))
        .collect();
    let resp = frames
        .push_frames(tokio_stream::iter(reqs))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.frames_accepted, 5);
    let s = wait_for(&mut acq, "every frame counted", |s| {
        s.recording
            .as_ref()
            .is_some_and(|r| r.frames_not_recorded == 5)
    })
    .await;
    assert_eq!(s.state, AcquisitionState::Running as i32);
    let r = s.recording.unwrap();
    assert_eq!(r.state, RecordingState::Recording as i32);
    assert_eq!((r.frames_written, r.queue_bytes), (0, 0));
    let fin = rec
        .stop_recording(StopRecordingRequest {})
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!((fin.frames_written, fin.frames_not_recorded), (0, 5));
    acq.stop(StopRequest {}).await.unwrap();
    server.stop().await;
    std::fs::remove_dir_all(&root).unwrap();
}
