//! Events and rules over real gRPC: the closed loop with the simulated camera (its ground
//! truth drives a rule that speeds the camera up, captures frames around the division and
//! tells control software where to look), classical detectors on pushed frames, and the
//! errors a client gets for bad rules and requests.

mod common;

use common::{TestServer, next, push_u16, start, status, subscribe_actions_and_events, wait_for};
use scopepilot::proto::events_client::EventsClient;
use scopepilot::proto::{
    AcknowledgeActionRequest, Action, ActionPhase, DeleteRuleRequest, Event,
    ListGroundTruthRequest, ListRulesRequest, PutRuleRequest, SubscribeActionsRequest,
    SubscribeEventsRequest, ValidateRuleRequest,
};
use tonic::Code;
use tonic::transport::Channel;

async fn subscribe_events(
    events: &mut EventsClient<Channel>,
    kinds: Vec<String>,
    detectors: Vec<String>,
) -> tonic::Streaming<Event> {
    let request = SubscribeEventsRequest {
        kinds,
        detectors,
        ..Default::default()
    };
    events.subscribe_events(request).await.unwrap().into_inner()
}

fn param<'a>(a: &'a Action, key: &str) -> &'a str {
    a.params.get(key).map(String::as_str).unwrap_or("")
}

/// A simulated camera at 20 fps whose nuclei divide every few seconds.
fn simulated_config(root: &std::path::Path) -> String {
    format!(
        r#"
[api]
listen = "127.0.0.1:0"
[acquisition]
autostart = false
[source.simulated]
width = 128
height = 128
frame_rate_hz = 20.0
seed = 3
[source.simulated.scene]
initial_nuclei = 8
division_interval_s = 3.0
mitosis_duration_s = 0.5
[recording]
root = "{}"
checkpoint_ms = 20

[[rules]]
name = "truth-burst"
when = {{ detector = "simulator", cooldown_s = 30 }}
actions = [
  {{ type = "set_interval", speedup = 4, duration_s = 1.0 }},
  {{ type = "capture", stream = "raw", pre_frames = 5, post_frames = 5 }},
  {{ type = "emit", name = "move_stage", params = {{ x = "{{x}}", y = "{{y}}" }} }},
]
"#,
        root.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulators_divisions_close_the_loop_speed_capture_and_tell_the_client() {
    let root = common::temp_dir("events-loop");
    let server = TestServer::start(&simulated_config(&root)).await;
    let mut acq = server.acquisition().await;
    let mut events = server.events().await;
    let request = SubscribeEventsRequest {
        include_ground_truth: true,
        ..Default::default()
    };
    let (mut actions, mut truth) = subscribe_actions_and_events(&mut events, request).await;
    acq.start(start("simulated")).await.unwrap();
    let division: Event = next(&mut truth, 20).await;
    assert!(
        division.ground_truth && division.kind == "division" && division.detector == "simulator"
    );
    // The rule's three actions, in order, for that division.
    let speed = next(&mut actions, 10).await;
    assert_eq!(
        (speed.name.as_str(), speed.phase()),
        ("set_frame_interval", ActionPhase::Trigger)
    );
    assert_eq!(param(&speed, "interval_ms"), "12.5");
    assert!(speed.executed_by_daemon);
    assert_eq!(speed.event.as_ref().map(|e| e.id), Some(division.id));
    let capture = next(&mut actions, 10).await;
    assert_eq!(
        (capture.name.as_str(), param(&capture, "error")),
        ("capture", "")
    );
    let look = next(&mut actions, 10).await;
    assert_eq!(look.name, "move_stage");
    assert_eq!(param(&look, "x"), format!("{}", division.x));
    // The camera obeys at once, and returns to its own rate when the hold ends.
    let fast = status(&mut acq).await.frame_interval_us;
    assert_eq!(fast, 12_500);
    let back = next(&mut actions, 10).await;
    assert_eq!(
        (back.name.as_str(), back.phase()),
        ("set_frame_interval", ActionPhase::Release)
    );
    assert_eq!(param(&back, "interval_ms"), "50");
    assert_eq!(status(&mut acq).await.frame_interval_us, 50_000);
    // Control software acknowledges what it did; twice is refused.
    let ack = AcknowledgeActionRequest {
        action_id: look.id,
        success: true,
        message: "stage moved".into(),
    };
    assert!(
        events
            .acknowledge_action(ack.clone())
            .await
            .unwrap()
            .into_inner()
            .round_trip_ms
            > 0.0
    );
    assert_eq!(
        events.acknowledge_action(ack).await.unwrap_err().code(),
        Code::AlreadyExists
    );
    // The ground truth is also listed; the capture holds 5 frames before and 5 after.
    let listed = events
        .list_ground_truth(ListGroundTruthRequest { from_frame: 0 })
        .await
        .unwrap()
        .into_inner()
        .divisions;
    assert!(
        listed
            .iter()
            .any(|d| d.frame_number == division.frame_number)
    );
    let path = param(&capture, "path").to_string();
    let frames = wait_for(&mut acq, "the capture to be written", |_| {
        std::fs::read_to_string(format!("{path}/raw/frame_number/zarr.json"))
            .ok()
            .is_some_and(|m| m.contains("\"shape\": [\n    10"))
    })
    .await;
    let s = frames.events.expect("events status");
    assert_eq!((s.captures, s.actions_acknowledged), (1, 1));
    assert!(s.events >= 1 && s.actions >= 4, "{s:?}");
    assert_eq!(s.detections_dropped, 0);
    server.stop().await;
    let _ = std::fs::remove_dir_all(&root);
}

const PUSH: &str = r#"
[api]
listen = "127.0.0.1:0"
[acquisition]
autostart = false
[source]
kind = "push"

[[stages]]
name = "corner"
kind = "detect"
input = "raw"
queue = { capacity = 64, policy = "block" }
params = { detector = "roi_mean", roi = [0, 0, 8, 8], threshold = 1000.0 }

[[stages]]
name = "cells"
kind = "detect"
input = "raw"
queue = { capacity = 64, policy = "block" }
params = { detector = "object_count", roi = [10, 10, 22, 22], threshold = 500.0, min_area_px = 4 }
"#;

/// A 32x32 frame: the 8x8 corner at `corner`, and `blobs` separate 3x3 bright squares.
fn pushed(n: u64, corner: u16, blobs: usize) -> scopepilot::proto::PushFramesRequest {
    let (w, h) = (32usize, 32usize);
    let mut px = vec![100u16; w * h];
    for y in 0..8 {
        for x in 0..8 {
            px[y * w + x] = corner;
        }
    }
    for b in 0..blobs {
        let (x0, y0) = (12 + 6 * (b % 3), 12 + 6 * (b / 3));
        for y in y0..y0 + 3 {
            for x in x0..x0 + 3 {
                px[y * w + x] = 900;
            }
        }
    }
    push_u16(n, w, h, &px)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classical_detectors_stream_events_and_rules_are_edited_at_run_time() {
    let server = TestServer::start(PUSH).await;
    let mut acq = server.acquisition().await;
    let mut events = server.events().await;
    let mut rules = server.rules().await;
    let rule = r#"
name = "bright-corner"
when = { detector = "corner", kind = "roi_mean" }
actions = [
  { type = "set_interval", interval_ms = 5, duration_s = 60 },
  { type = "emit", name = "switch_channel", params = { to = "GFP", frame = "{frame}" } },
]
"#;
    let put = rules
        .put_rule(PutRuleRequest { toml: rule.into() })
        .await
        .unwrap()
        .into_inner();
    assert!(!put.replaced);
    assert_eq!(put.rule.unwrap().name, "bright-corner");
    let mut corner = subscribe_events(&mut events, vec![], vec!["corner".into()]).await;
    let mut counts = subscribe_events(&mut events, vec!["object_count".into()], vec![]).await;
    let mut actions = events
        .subscribe_actions(SubscribeActionsRequest {
            names: vec!["switch_channel".into(), "set_frame_interval".into()],
            queue_capacity: 0,
        })
        .await
        .unwrap()
        .into_inner();
    acq.start(start("push")).await.unwrap();
    // Corner dark, bright (event), bright, dark, bright (event); 1, 1, 2, 2, 3 blobs.
    let frames = vec![
        pushed(0, 100, 1),
        pushed(1, 2000, 1),
        pushed(2, 2000, 2),
        pushed(3, 100, 2),
        pushed(4, 2000, 3),
    ];
    server
        .frames()
        .await
        .push_frames(tokio_stream::iter(frames))
        .await
        .unwrap();
    let (a, b) = (next(&mut corner, 10).await, next(&mut corner, 10).await);
    assert_eq!((a.frame_number, b.frame_number), (1, 4));
    assert_eq!((a.kind.as_str(), a.score), ("roi_mean", 2000.0));
    assert_eq!((a.x, a.y, a.bbox.unwrap().width), (4.0, 4.0, 8));
    assert!(a.detected_unix_ns >= a.frame_arrival_unix_ns);
    let (c, d) = (next(&mut counts, 10).await, next(&mut counts, 10).await);
    assert_eq!((c.frame_number, c.score, c.values["delta"]), (2, 2.0, 1.0));
    assert_eq!((d.frame_number, d.score), (4, 3.0));
    // The push source's camera is the client's: the daemon tells, it does not execute.
    let told = next(&mut actions, 10).await;
    assert_eq!(
        (told.name.as_str(), told.executed_by_daemon),
        ("set_frame_interval", false)
    );
    let switch = next(&mut actions, 10).await;
    assert_eq!(
        (param(&switch, "to"), param(&switch, "frame")),
        ("GFP", "1")
    );
    let listed = rules
        .list_rules(ListRulesRequest {})
        .await
        .unwrap()
        .into_inner()
        .rules;
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].triggers, listed[0].events_matched), (2, 2));
    assert!(listed[0].toml.contains("switch_channel"));
    rules
        .delete_rule(DeleteRuleRequest {
            name: "bright-corner".into(),
        })
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rules_and_requests_get_the_right_codes_and_leave_running_rules_alone() {
    let server = TestServer::start(PUSH).await;
    let mut rules = server.rules().await;
    let mut events = server.events().await;
    let good = "name = \"keep\"\nwhen = { kind = \"object_count\" }\nactions = [{ type = \"emit\", name = \"n\" }]";
    rules
        .put_rule(PutRuleRequest { toml: good.into() })
        .await
        .unwrap();
    for (text, wanted) in [
        (
            "name = \"x\"\nwhen = { detector = \"ghost\" }\nactions = [{ type = \"emit\", name = \"n\" }]",
            "when.detector",
        ),
        (
            "name = \"x\"\nwhen = { kind = \"mitosis\" }\nactions = [{ type = \"emit\", name = \"n\" }]",
            "when.kind",
        ),
        (
            "name = \"x\"\nwhen = { kind = \"roi_mean\", count = 5 }\nactions = [{ type = \"emit\", name = \"n\" }]",
            "when.window_s",
        ),
        (
            "name = \"x\"\nwhen = { kind = \"roi_mean\" }\nactions = [{ type = \"exec\", cmd = \"rm\" }]",
            "exec",
        ),
        ("name = [", "invalid rule"),
        (
            "name = \"keep\"\nwhen = { kind = \"roi_mean\" }\nactions = []",
            "actions",
        ),
    ] {
        for result in [
            rules
                .put_rule(PutRuleRequest { toml: text.into() })
                .await
                .map(drop),
            rules
                .validate_rule(ValidateRuleRequest { toml: text.into() })
                .await
                .map(drop),
        ] {
            let e = result.unwrap_err();
            assert_eq!(e.code(), Code::InvalidArgument, "{text}");
            assert!(e.message().contains(wanted), "{text}: {}", e.message());
        }
    }
    let listed = rules
        .list_rules(ListRulesRequest {})
        .await
        .unwrap()
        .into_inner()
        .rules;
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0].toml.contains("object_count"),
        "the rule named keep was not replaced"
    );
    let missing = rules
        .delete_rule(DeleteRuleRequest {
            name: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert!(missing.message().contains("keep"));
    let ack = events
        .acknowledge_action(AcknowledgeActionRequest {
            action_id: 42,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(ack.code(), Code::NotFound);
    let unknown = events
        .subscribe_events(SubscribeEventsRequest {
            detectors: vec!["ghost".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);
    let huge = events
        .subscribe_actions(SubscribeActionsRequest {
            names: vec![],
            queue_capacity: 1 << 30,
        })
        .await
        .unwrap_err();
    assert_eq!(huge.code(), Code::InvalidArgument);
    let truth = events
        .list_ground_truth(ListGroundTruthRequest::default())
        .await
        .unwrap_err();
    assert_eq!(truth.code(), Code::FailedPrecondition);
    server.stop().await;
}

#[test]
fn a_config_with_a_bad_rule_names_it() {
    let text = format!(
        "{PUSH}\n[[rules]]\nname = \"late\"\nwhen = {{ detector = \"corner\", count = 2 }}\nactions = [{{ type = \"emit\", name = \"n\" }}]\n"
    );
    let e = scopepilot::config::Config::from_toml(&text)
        .unwrap_err()
        .to_string();
    assert!(e.contains("rules[0] (late).when.window_s"), "{e}");
    let text = format!(
        "{PUSH}\n[[stages]]\nname = \"d\"\nkind = \"detect\"\nparams = {{ detector = \"activity\" }}\n"
    );
    let e = scopepilot::config::Config::from_toml(&text)
        .unwrap_err()
        .to_string();
    assert!(e.contains("params.threshold"), "{e}");
}
