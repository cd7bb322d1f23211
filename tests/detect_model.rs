//! The shipped division detector (`models/detect-divisions`) in the daemon's `detect` stage:
//! its events on the package's test tensors are exactly the ones the training scripts' peak
//! rule finds (`test_events.json`), so the F1 measured in Python is the daemon's F1.

use std::path::Path;

use scopepilot::frame::{Frame, FrameMeta, FrameSpec, PixelType, Pixels};
use scopepilot::inference::InferenceConfig;
use scopepilot::inference::npy::NpyArray;
use scopepilot::pipeline::detect::{DetectParams, DetectStage};

const PACKAGE: &str = "models/detect-divisions";

fn frame(n: u64, w: usize, h: usize, plane: &[f32]) -> Frame {
    Frame::standalone(
        FrameSpec::new(w as u32, h as u32, PixelType::U16),
        FrameMeta::arriving_now(n, n),
        Pixels::U16(plane.iter().map(|&v| v.round() as u16).collect()),
    )
}

#[test]
fn the_detect_stage_finds_exactly_the_packages_test_events() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(PACKAGE);
    let input = NpyArray::read(&dir.join("test_input.npy")).expect("test input");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("test_events.json")).unwrap())
            .unwrap();
    let [_, 2, h, w] = input.shape[..] else {
        panic!("test input shape {:?}", input.shape)
    };
    let params: DetectParams = toml::from_str(&format!(
        "detector = \"model\"\nmodel = \"{}\"",
        dir.display()
    ))
    .unwrap();
    assert!(params.problems().is_empty(), "{:?}", params.problems());
    assert_eq!(
        params.event_kind(),
        "division",
        "the package's own event kind"
    );
    let mut stage = DetectStage::new(
        "divisions",
        "raw",
        &params,
        &InferenceConfig::default(),
        None,
    )
    .expect("the package loads and passes its self-test");
    let n = w * h;
    let first = stage.examine(&frame(0, w, h, &input.data[..n])).unwrap();
    assert!(
        first.events.is_empty(),
        "no previous frame: nothing to compare"
    );
    let d = stage
        .examine(&frame(1, w, h, &input.data[n..2 * n]))
        .unwrap();
    let want = expected["events"].as_array().unwrap();
    assert!(!want.is_empty(), "the test tensors hold a division");
    assert_eq!(d.events.len(), want.len(), "{:?}", d.events);
    for (got, want) in d.events.iter().zip(want) {
        assert_eq!(
            (got.y, got.x),
            (
                want["y"].as_f64().unwrap() as f32,
                want["x"].as_f64().unwrap() as f32
            )
        );
        assert!((got.score as f64 - want["score"].as_f64().unwrap()).abs() < 1e-4);
        assert_eq!(&*got.kind, "division");
    }
    assert!(d.signal >= d.events[0].score);
}

#[test]
fn the_self_driving_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/self-driving.toml");
    let config = scopepilot::config::Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.rules.len(), 1);
    assert!(config.listen_addr().unwrap().ip().is_loopback());
}
