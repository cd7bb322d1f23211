//! The closed loop of `config/self-driving.toml`, sped up: the simulated camera images slowly;
//! the learned division detector sees divisions; the hysteresis rule switches the camera to
//! fast imaging (captured frames around the switch, a stage move for control software) and
//! back to slow once no division has been seen for the dwell time. Everything reaches a gRPC
//! client; the detections are checked against the simulator's exact ground truth.

mod common;

use std::time::Duration;

use common::{TestServer, next, start, status, subscribe_actions_and_events};
use scopepilot::proto::{
    Action, ActionPhase, Event, ListGroundTruthRequest, SubscribeEventsRequest,
};

/// The shipped config with a faster clock: 4 fps slow (16 fps fast), 256x256, a division
/// every couple of seconds, a 1.5 s dwell, an ephemeral port and a temporary recording root.
fn config(root: &std::path::Path) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/self-driving.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = text.clone();
    for (from, to) in [
        ("listen = \"127.0.0.1:50051\"", "listen = \"127.0.0.1:0\""),
        ("autostart = true", "autostart = false"),
        ("width = 512", "width = 256"),
        ("height = 512", "height = 256"),
        ("frame_rate_hz = 1.0", "frame_rate_hz = 4.0"),
        ("initial_nuclei = 16", "initial_nuclei = 8"),
        ("division_interval_s = 320.0", "division_interval_s = 16.0"),
        ("mitosis_duration_s = 4.0", "mitosis_duration_s = 1.0"),
        ("min_dwell_s = 10", "min_dwell_s = 1.5"),
        (
            "root = \"recordings\"",
            &format!("root = \"{}\"", root.display()),
        ),
        (
            "model = \"models/detect-divisions\"",
            &format!(
                "model = \"{}/models/detect-divisions\"",
                env!("CARGO_MANIFEST_DIR")
            ),
        ),
    ] {
        assert!(
            out.contains(from),
            "config/self-driving.toml no longer has {from:?}"
        );
        out = out.replace(from, to);
    }
    out
}

/// The next `set_frame_interval` action in `phase`, skipping the others (kept in `seen`).
async fn interval_action(
    actions: &mut tonic::Streaming<Action>,
    phase: ActionPhase,
    seen: &mut Vec<Action>,
) -> Action {
    loop {
        let a = next(actions, 90).await;
        seen.push(a.clone());
        if a.name == "set_frame_interval" && a.phase() == phase {
            return a;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn divisions_switch_the_camera_to_fast_imaging_and_back() {
    let root = common::temp_dir("self-driving");
    let server = TestServer::start(&config(&root)).await;
    let mut acq = server.acquisition().await;
    let mut events_client = server.events().await;
    let request = SubscribeEventsRequest {
        detectors: vec!["divisions".into()],
        queue_capacity: 4096,
        ..Default::default()
    };
    let (mut actions, mut detections) =
        subscribe_actions_and_events(&mut events_client, request).await;
    acq.start(start("simulated")).await.unwrap();
    assert_eq!(status(&mut acq).await.frame_interval_us, 250_000);

    let mut seen = Vec::new();
    let fast = interval_action(&mut actions, ActionPhase::Trigger, &mut seen).await;
    assert_eq!(fast.params["interval_ms"], "62.5");
    assert!(fast.executed_by_daemon);
    let trigger = fast.event.clone().expect("the detection that triggered it");
    assert_eq!(
        (trigger.kind.as_str(), trigger.detector.as_str()),
        ("division", "divisions")
    );
    assert_eq!(status(&mut acq).await.frame_interval_us, 62_500);
    let slow = interval_action(&mut actions, ActionPhase::Release, &mut seen).await;
    assert_eq!(slow.params["interval_ms"], "250");
    assert_eq!(status(&mut acq).await.frame_interval_us, 250_000);
    // The trigger also captured the frames before it and sent the stage to the division.
    let capture = seen
        .iter()
        .find(|a| a.name == "capture")
        .expect("a capture");
    assert!(!capture.params.contains_key("error"), "{capture:?}");
    assert_eq!(capture.params["pre_captured"], "5");
    let stage = seen
        .iter()
        .find(|a| a.name == "move_stage")
        .expect("a stage move");
    assert_eq!(stage.params["x"], format!("{}", trigger.x));

    // What the detector reported matches the simulator's divisions: each detection lies at a
    // cell that is dividing, i.e. within the mitosis (1 s before the daughters appear, in scene
    // time = camera timestamps) or one slow frame after it.
    let mut found: Vec<Event> = Vec::new();
    while let Ok(Ok(Some(e))) =
        tokio::time::timeout(Duration::from_millis(200), detections.message()).await
    {
        found.push(e);
    }
    let truth = events_client
        .list_ground_truth(ListGroundTruthRequest { from_frame: 0 })
        .await
        .unwrap()
        .into_inner()
        .divisions;
    let matched = found.iter().filter(|e| {
        truth.iter().any(|d| {
            let early_ns = d.timestamp_ns as i64 - e.timestamp_ns as i64;
            (d.x - e.x).hypot(d.y - e.y) <= 15.0
                && (-250_000_000..=1_250_000_000).contains(&early_ns)
        })
    });
    assert!(
        matched.count() > 0,
        "no detection near a true division: {found:#?} vs {truth:#?}"
    );
    server.stop().await;
    let _ = std::fs::remove_dir_all(&root);
}
