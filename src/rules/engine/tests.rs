use super::*;
use crate::events::BoundingBox;
use crate::frame::{Frame, FrameMeta, FrameSpec, PixelType, Pixels};
use crate::pipeline::{StageConfig, Taps};
use crate::sink::record::RecordingConfig;
use crate::source::FrameInterval;

const WAIT: Duration = Duration::from_secs(5);

fn ctx() -> RuleContext {
    RuleContext {
        detectors: vec![("divisions".into(), "division".into())],
        streams: vec!["raw".into(), "divisions".into()],
    }
}

fn engine(rules: &[&str], recording_root: &std::path::Path) -> RuleEngine {
    let rules: Vec<RuleConfig> = rules
        .iter()
        .map(|t| RuleConfig::from_toml(t).unwrap())
        .collect();
    let stages: Vec<StageConfig> = Vec::new();
    let captures = CaptureSet::new(
        Taps::new(&stages),
        RecordingConfig {
            root: recording_root.to_path_buf(),
            checkpoint_ms: 10,
            ..RecordingConfig::default()
        },
    );
    let governor = Arc::new(IntervalGovernor::new(FrameInterval::new(
        Duration::from_millis(1000),
    )));
    RuleEngine::start(ctx(), &rules, governor, captures).unwrap()
}

fn no_root() -> std::path::PathBuf {
    std::env::temp_dir().join("scopepilot-engine-tests-unused")
}

fn event(frame: u64, x: f32, score: f32) -> Event {
    let now = Instant::now();
    Event {
        id: 0,
        kind: "division".into(),
        detector: "divisions".into(),
        stream: "raw".into(),
        frame_number: frame,
        timestamp_ns: frame * 1000,
        x,
        y: 10.0,
        bbox: BoundingBox::default(),
        score,
        values: Vec::new(),
        frame_arrival: now,
        detected: now,
        ground_truth: false,
    }
}

fn detection(frame: u64, signal: f32, events: Vec<Event>) -> EngineInput {
    let now = Instant::now();
    EngineInput::Detection(Detection {
        detector: "divisions".into(),
        frame_number: frame,
        signal,
        events,
        frame_arrival: now,
        detected: now,
    })
}

/// The next action, waiting up to `WAIT`.
fn next(rx: &mut FanoutReceiver<Action>) -> Action {
    let start = Instant::now();
    loop {
        if let Some(a) = rx.try_recv() {
            return a;
        }
        assert!(start.elapsed() < WAIT, "no action within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Wait until the engine has taken in everything sent so far.
fn settle(e: &RuleEngine, detections: u64) {
    let start = Instant::now();
    while e.status().detections < detections {
        assert!(start.elapsed() < WAIT);
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(5));
}

fn param<'a>(a: &'a Action, key: &str) -> &'a str {
    a.params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

#[test]
fn counted_events_in_a_window_trigger_with_filled_parameters_and_cooldown() {
    let e = engine(
        &[r#"
name = "pair"
when = { kind = "division", min_score = 0.5, roi = [0, 0, 100, 100], count = 2, window_s = 60, cooldown_s = 3600 }
actions = [{ type = "emit", name = "move_stage", params = { x = "{x}", frame = "{frame}", speed = 2 } }]
"#],
        &no_root(),
    );
    let mut actions = e.subscribe_actions(16);
    let mut events = e.subscribe_events(16);
    let tx = e.sender();
    tx.send(detection(1, 0.9, vec![event(1, 20.0, 0.9)]));
    tx.send(detection(2, 0.3, vec![event(2, 30.0, 0.3)])); // score too low
    tx.send(detection(3, 0.9, vec![event(3, 500.0, 0.9)])); // outside the ROI
    tx.send(detection(4, 0.9, vec![event(4, 40.0, 0.8)])); // second match: trigger
    tx.send(detection(
        5,
        0.9,
        vec![event(5, 41.0, 0.8), event(5, 42.0, 0.8)],
    )); // cooldown
    settle(&e, 5);
    let a = next(&mut actions);
    assert_eq!(
        (a.name.as_str(), a.phase, a.dry_run),
        ("move_stage", ActionPhase::Trigger, false)
    );
    assert_eq!(
        (param(&a, "x"), param(&a, "frame"), param(&a, "speed")),
        ("40", "4", "2")
    );
    assert!(
        actions.try_recv().is_none(),
        "the cooldown withholds the second pair"
    );
    let st = &e.list()[0];
    assert_eq!((st.events_matched, st.triggers, st.suppressed), (4, 1, 1));
    let ids: Vec<u64> = std::iter::from_fn(|| events.try_recv())
        .map(|ev| ev.id)
        .collect();
    assert_eq!(
        ids,
        vec![1, 2, 3, 4, 5, 6],
        "every event is published, numbered in order"
    );
    assert_eq!(e.acknowledge(a.id, true, "done").map(|_| ()), Ok(()));
    assert_eq!(e.acknowledge(a.id, true, ""), Err(AckError::Already(a.id)));
    assert_eq!(e.acknowledge(999, true, ""), Err(AckError::NotFound(999)));
    assert_eq!(e.status().actions_acknowledged, 1);
}

#[test]
fn hysteresis_switches_to_fast_imaging_and_back_after_the_dwell() {
    let e = engine(
        &[r#"
name = "eda"
when = { detector = "divisions", hysteresis = { upper = 0.6, lower = 0.3, min_dwell_s = 0.2 } }
actions = [{ type = "set_interval", speedup = 10 }, { type = "emit", name = "fast_mode" }]
"#],
        &no_root(),
    );
    e.set_paced(true);
    let interval = e.governor().interval().clone();
    let mut actions = e.subscribe_actions(16);
    let tx = e.sender();
    tx.send(detection(1, 0.5, Vec::new())); // below upper: nothing
    tx.send(detection(2, 0.7, vec![event(2, 5.0, 0.7)])); // on
    settle(&e, 2);
    let a = next(&mut actions);
    assert_eq!(
        (a.name.as_str(), param(&a, "interval_ms")),
        ("set_frame_interval", "100")
    );
    assert!(a.executed_by_daemon);
    assert_eq!(a.event.as_ref().map(|ev| ev.frame_number), Some(2));
    assert_eq!(next(&mut actions).name, "fast_mode");
    assert_eq!(interval.get(), Duration::from_millis(100));
    tx.send(detection(3, 0.1, Vec::new())); // below lower, but within the dwell: stays on
    settle(&e, 3);
    assert!(e.list()[0].active);
    std::thread::sleep(Duration::from_millis(250));
    tx.send(detection(4, 0.4, Vec::new())); // between the thresholds: stays on
    settle(&e, 4);
    assert!(e.list()[0].active);
    tx.send(detection(5, 0.1, Vec::new())); // below lower after the dwell: off
    settle(&e, 5);
    let a = next(&mut actions);
    assert_eq!(
        (a.phase, param(&a, "interval_ms")),
        (ActionPhase::Release, "1000")
    );
    assert_eq!(next(&mut actions).phase, ActionPhase::Release);
    assert_eq!(interval.get(), Duration::from_millis(1000));
    assert_eq!((e.list()[0].triggers, e.list()[0].releases), (1, 1));
    assert_eq!(
        e.list()[0].events_matched,
        1,
        "the one event of its detector"
    );
}

#[test]
fn timed_interval_holds_expire_and_dry_runs_change_nothing() {
    let e = engine(
        &[
            r#"
name = "burst"
when = { kind = "division" }
actions = [{ type = "set_interval", interval_ms = 50, duration_s = 0.1 }]
"#,
            r#"
name = "rehearsal"
dry_run = true
when = { kind = "division" }
actions = [{ type = "set_interval", interval_ms = 10, duration_s = 100 }]
"#,
        ],
        &no_root(),
    );
    let interval = e.governor().interval().clone();
    let mut actions = e.subscribe_actions(16);
    e.sender().send(detection(1, 0.9, vec![event(1, 5.0, 0.9)]));
    let (a, b) = (next(&mut actions), next(&mut actions));
    assert_eq!((a.rule.as_str(), a.dry_run), ("burst", false));
    assert_eq!(
        (b.rule.as_str(), b.dry_run, b.executed_by_daemon),
        ("rehearsal", true, false)
    );
    assert_eq!(
        interval.get(),
        Duration::from_millis(50),
        "the dry run did not apply 10 ms"
    );
    let released = next(&mut actions);
    assert_eq!(
        (released.rule.as_str(), released.phase),
        ("burst", ActionPhase::Release)
    );
    assert_eq!(interval.get(), Duration::from_millis(1000));
}

#[test]
fn ground_truth_only_reaches_rules_that_name_the_simulator() {
    let e = engine(
        &[
            r#"
name = "any-division"
when = { kind = "division" }
actions = [{ type = "emit", name = "detected" }]
"#,
            r#"
name = "truth"
when = { detector = "simulator" }
actions = [{ type = "emit", name = "true_division", params = { at = "{x},{y}" } }]
"#,
        ],
        &no_root(),
    );
    let mut actions = e.subscribe_actions(16);
    let mut truth = event(7, 3.0, 1.0);
    truth.detector = "simulator".into();
    truth.ground_truth = true;
    e.sender().send(EngineInput::GroundTruth(truth));
    let a = next(&mut actions);
    assert_eq!(
        (a.name.as_str(), param(&a, "at")),
        ("true_division", "3,10")
    );
    std::thread::sleep(Duration::from_millis(30));
    assert!(actions.try_recv().is_none());
    assert_eq!(e.ground_truth(0).len(), 1);
    assert_eq!(e.ground_truth(8).len(), 0);
}

#[test]
fn rules_are_replaced_and_deleted_at_run_time_and_bad_ones_change_nothing() {
    let e = engine(&[], &no_root());
    let rule = r#"
name = "r1"
when = { kind = "division" }
actions = [{ type = "emit", name = "a" }]
"#;
    assert!(!e.put(rule).unwrap().1);
    assert!(e.put(rule).unwrap().1, "same name: replaced");
    let err = e.put("name = \"r2\"\nwhen = { detector = \"ghost\" }\nactions = [{ type = \"emit\", name = \"a\" }]").unwrap_err();
    assert_eq!(err.key, "when.detector");
    assert!(err.problem.contains("divisions"), "{}", err.problem);
    assert_eq!(e.list().len(), 1);
    assert!(e.delete("r1"));
    assert!(!e.delete("r1"));
    assert!(e.list().is_empty());
}

#[test]
fn a_capture_records_the_frames_before_and_after_the_trigger() {
    let root = std::env::temp_dir().join(format!("scopepilot-capture-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let stages: Vec<StageConfig> = Vec::new();
    let taps = Taps::new(&stages);
    let captures = CaptureSet::new(
        taps.clone(),
        RecordingConfig {
            root: root.clone(),
            checkpoint_ms: 10,
            ..RecordingConfig::default()
        },
    );
    let rule = RuleConfig::from_toml(
        r#"
name = "keep"
when = { kind = "division" }
actions = [{ type = "capture", stream = "raw", pre_frames = 3, post_frames = 2 }]
"#,
    )
    .unwrap();
    let governor = Arc::new(IntervalGovernor::new(FrameInterval::new(
        Duration::from_millis(10),
    )));
    let e = RuleEngine::start(ctx(), &[rule], governor, captures).unwrap();
    let mut actions = e.subscribe_actions(8);
    let raw = taps.get("raw").unwrap().clone();
    let frame = |n: u64| {
        Frame::standalone(
            FrameSpec::new(4, 2, PixelType::U16),
            FrameMeta::arriving_now(n, n),
            Pixels::U16(vec![n as u16; 8]),
        )
    };
    for n in 0..6 {
        raw.publish(&frame(n));
    }
    e.sender().send(detection(5, 1.0, vec![event(5, 1.0, 1.0)]));
    let a = next(&mut actions);
    assert_eq!(
        (
            a.name.as_str(),
            param(&a, "pre_captured"),
            param(&a, "error")
        ),
        ("capture", "3", "")
    );
    for n in 6..10 {
        raw.publish(&frame(n));
    }
    // Frames 3, 4, 5 before the trigger and 6, 7 after it, once the writer finished.
    let store = Arc::new(zarrs::filesystem::FilesystemStore::new(param(&a, "path")).unwrap());
    let start = Instant::now();
    let numbers: Vec<u64> = loop {
        let got = zarrs::array::Array::open(store.clone(), "/raw/frame_number")
            .ok()
            .and_then(|arr| {
                arr.retrieve_array_subset::<Vec<u64>>(&arr.subset_all())
                    .ok()
            });
        if let Some(v) = got.filter(|v| v.len() == 5) {
            break v;
        }
        assert!(start.elapsed() < WAIT, "capture not written");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(numbers, vec![3, 4, 5, 6, 7]);
    assert_eq!(e.status().captures, 1);
    let _ = std::fs::remove_dir_all(&root);
}
