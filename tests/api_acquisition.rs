//! Acquisition service over real gRPC: start/stop state machine, status counters, frame
//! interval, health and reflection.

mod common;

use common::{SMALL, TestServer, stage, start, status, wait_for};
use scopepilot::proto::{
    AcquisitionState, CameraSettings, Region, SetCameraSettingsRequest, SetFrameIntervalRequest,
    StopRequest,
};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_flow_through_the_gaussian_stage_and_every_frame_is_accounted_for() {
    let server = TestServer::start(SMALL).await;
    let mut c = server.acquisition().await;
    let idle = status(&mut c).await;
    assert_eq!(idle.state, AcquisitionState::Idle as i32);
    assert!(!idle.version.is_empty());

    let started = c
        .start(start(""))
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(started.state, AcquisitionState::Running as i32);
    assert_eq!(started.source, "simulated");
    assert_eq!((started.width, started.height), (128, 128));

    let s = wait_for(&mut c, "gaussian output", |s| {
        stage(s, "gaussian").frames_out >= 10
    })
    .await;
    let g = stage(&s, "gaussian");
    assert_eq!(g.kind, "gaussian");
    assert_eq!(g.input, "raw");
    assert!(g.latency_p50_us > 0.0 && g.latency_p99_us >= g.latency_p50_us);
    assert!(g.process_p50_us > 0.0);

    let stopped = c
        .stop(StopRequest {})
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(stopped.state, AcquisitionState::Idle as i32);
    // After a stop the pipeline has drained: every acquired frame is either delivered
    // downstream or counted as dropped, at each hop.
    let raw = stage(&stopped, "raw");
    let g = stage(&stopped, "gaussian");
    assert_eq!(
        stopped.frames_acquired,
        raw.frames_in + stopped.frames_dropped_ring
    );
    assert_eq!(raw.frames_out, raw.frames_in);
    assert_eq!(raw.frames_out, g.frames_in + g.frames_dropped);
    assert_eq!(g.frames_out + g.errors, g.frames_in);
    assert_eq!(stopped.ring_depth, 0);
    assert_eq!(g.queue_depth, 0);
    assert!(stopped.acquisition_time_s > 0.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_and_stop_in_the_wrong_state_are_failed_preconditions() {
    let server = TestServer::start(SMALL).await;
    let mut c = server.acquisition().await;
    let e = c.stop(StopRequest {}).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("not running"), "{}", e.message());

    c.start(start("simulated")).await.unwrap();
    let e = c.start(start("simulated")).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("already running"), "{}", e.message());
    c.stop(StopRequest {}).await.unwrap();

    let e = c.start(start("webcam")).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("webcam"));
    // No [source.replay] section in this config.
    let e = c.start(start("replay")).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("source.replay"), "{}", e.message());
    // Still serving, still idle.
    assert_eq!(status(&mut c).await.state, AcquisitionState::Idle as i32);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_interval_changes_while_running_and_rejects_bad_values() {
    let server = TestServer::start(SMALL).await;
    let mut c = server.acquisition().await;
    c.start(start("")).await.unwrap();
    assert_eq!(status(&mut c).await.frame_interval_us, 20_000);
    let r = c
        .set_frame_interval(SetFrameIntervalRequest { interval_us: 5_000 })
        .await
        .unwrap();
    assert_eq!(r.into_inner().interval_us, 5_000);
    assert_eq!(status(&mut c).await.frame_interval_us, 5_000);
    for bad in [0, 10, 10_000_000_000] {
        let e = c
            .set_frame_interval(SetFrameIntervalRequest { interval_us: bad })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "interval {bad}: {e:?}");
    }
    assert_eq!(status(&mut c).await.frame_interval_us, 5_000);
    // A faster interval means more frames: wait for them (functional, not a timing check).
    let before = status(&mut c).await.frames_acquired;
    wait_for(&mut c, "frames at the new rate", |s| {
        s.frames_acquired >= before + 20
    })
    .await;
    c.stop(StopRequest {}).await.unwrap();
    // The client's interval is kept for the next acquisition.
    c.start(start("")).await.unwrap();
    assert_eq!(status(&mut c).await.frame_interval_us, 5_000);
    c.stop(StopRequest {}).await.unwrap();

    c.start(start("push")).await.unwrap();
    let e = c
        .set_frame_interval(SetFrameIntervalRequest { interval_us: 5_000 })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    server.stop().await;
}

fn camera(settings: CameraSettings) -> SetCameraSettingsRequest {
    SetCameraSettingsRequest {
        settings: Some(settings),
    }
}

/// Without a camera at hand (tests/genicam.rs runs a real one): what the API checks itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_settings_are_kept_for_the_next_start_and_refused_without_a_camera() {
    let server = TestServer::start(SMALL).await;
    let mut c = server.acquisition().await;
    let e = c
        .set_camera_settings(camera(CameraSettings::default()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("[source.genicam]"), "{}", e.message());
    server.stop().await;

    // A configuration that names a camera but starts the simulator by default.
    let config = format!(
        "{SMALL}\n[source.genicam]\naddress = \"127.0.0.1\"\nexposure_us = 10000\ngain = 1\n"
    );
    let server = TestServer::start(&config).await;
    let mut c = server.acquisition().await;
    let idle = c
        .set_camera_settings(camera(CameraSettings {
            exposure_us: Some(25_000.0),
            roi: Some(Region {
                x: 8,
                y: 0,
                width: 64,
                height: 32,
            }),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(!idle.applied, "nothing runs: kept for the next start");
    let s = idle.settings.unwrap();
    assert_eq!(s.exposure_us, Some(25_000.0));
    assert_eq!(s.gain, Some(1.0), "the configured gain stays");
    assert_eq!(s.roi.map(|r| (r.x, r.width, r.height)), Some((8, 64, 32)));
    assert_eq!(s.binning, None);
    // An empty request reads back what is kept.
    let back = c
        .set_camera_settings(camera(CameraSettings::default()))
        .await
        .unwrap()
        .into_inner()
        .settings
        .unwrap();
    assert_eq!(back, s);

    for (bad, key) in [
        (
            CameraSettings {
                exposure_us: Some(-5.0),
                ..Default::default()
            },
            "exposure_us",
        ),
        (
            CameraSettings {
                gain: Some(f64::INFINITY),
                ..Default::default()
            },
            "gain",
        ),
        (
            CameraSettings {
                binning: Some(0),
                ..Default::default()
            },
            "binning",
        ),
        (
            CameraSettings {
                roi: Some(Region::default()),
                ..Default::default()
            },
            "roi",
        ),
    ] {
        let e = c.set_camera_settings(camera(bad)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{key}: {e:?}");
        assert!(e.message().starts_with(key), "{key}: {}", e.message());
    }

    // The simulator runs: it has no camera settings.
    c.start(start("simulated")).await.unwrap();
    let e = c
        .set_camera_settings(camera(CameraSettings {
            gain: Some(2.0),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("simulated"), "{}", e.message());
    c.stop(StopRequest {}).await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_are_served() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let server = TestServer::start(SMALL).await;
    let mut health = HealthClient::new(server.channel().await);
    for service in ["", "scopepilot.v1.Acquisition", "scopepilot.v1.Frames"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            r.status,
            ServingStatus::Serving as i32,
            "service {service:?}"
        );
    }

    let mut reflection = ServerReflectionClient::new(server.channel().await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection response {resp:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"scopepilot.v1.Acquisition".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"scopepilot.v1.Frames".to_string()),
        "{names:?}"
    );
    server.stop().await;
}
