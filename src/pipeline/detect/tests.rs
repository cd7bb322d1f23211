use super::*;
use crate::frame::{FrameMeta, FrameSpec, PixelType, Pixels};

fn frame(n: u64, w: u32, h: u32, paint: impl Fn(u32, u32) -> u16) -> Frame {
    let data = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .map(|(x, y)| paint(x, y));
    Frame::standalone(
        FrameSpec::new(w, h, PixelType::U16),
        FrameMeta::arriving_now(n, n * 1000),
        Pixels::U16(data.collect()),
    )
}

fn params(toml_text: &str) -> DetectParams {
    toml::from_str(toml_text).expect("params parse")
}

fn stage(p: &DetectParams) -> DetectStage {
    DetectStage::new("det", "raw", p, &InferenceConfig::default(), None).expect("builds")
}

#[test]
fn roi_mean_fires_once_per_crossing_and_reports_the_mean() {
    let p = params("detector = \"roi_mean\"\nroi = [0, 0, 4, 4]\nthreshold = 150.0");
    assert!(p.problems().is_empty(), "{:?}", p.problems());
    let mut s = stage(&p);
    let levels = [100u16, 200, 220, 90, 180];
    let mut fired = Vec::new();
    for (n, level) in levels.iter().enumerate() {
        // Only the ROI (top-left 4x4) changes; the rest stays dark or bright.
        let d = s
            .examine(&frame(n as u64, 8, 8, |x, y| {
                if x < 4 && y < 4 { *level } else { 1000 }
            }))
            .unwrap();
        assert_eq!(d.signal, *level as f32);
        fired.extend(
            d.events
                .iter()
                .map(|e| (e.frame_number, e.score, e.kind.to_string())),
        );
    }
    assert_eq!(
        fired,
        vec![(1, 200.0, "roi_mean".into()), (4, 180.0, "roi_mean".into())]
    );
}

#[test]
fn activity_is_the_rms_difference_and_locates_the_change() {
    let p = params("detector = \"activity\"\nthreshold = 5.0\nevent_kind = \"flash\"");
    let mut s = stage(&p);
    let still = |_: u32, _: u32| 100u16;
    assert!(
        s.examine(&frame(0, 16, 16, still))
            .unwrap()
            .events
            .is_empty()
    );
    assert_eq!(s.examine(&frame(1, 16, 16, still)).unwrap().signal, 0.0);
    // A 2x2 flash of +160 ADU at (12, 4): RMS over 256 pixels = sqrt(4 * 160^2 / 256) = 20.
    let flash = |x: u32, y: u32| {
        if (12..14).contains(&x) && (4..6).contains(&y) {
            260
        } else {
            100
        }
    };
    let d = s.examine(&frame(2, 16, 16, flash)).unwrap();
    assert!((d.signal - 20.0).abs() < 1e-3, "{}", d.signal);
    let e = &d.events[0];
    assert_eq!(&*e.kind, "flash");
    assert!(
        (e.x - 12.5).abs() < 1e-3 && (e.y - 4.5).abs() < 1e-3,
        "{} {}",
        e.x,
        e.y
    );
}

#[test]
fn object_count_counts_connected_blobs_above_the_area_and_reports_changes() {
    let p = params("detector = \"object_count\"\nthreshold = 500.0\nmin_area_px = 3");
    let mut s = stage(&p);
    // Two 2x2 blobs (one touching the other diagonally counts as one), one single pixel (too small).
    let one = |x: u32, y: u32| match (x, y) {
        (1..=2, 1..=2) | (3..=4, 3..=4) | (10, 10) => 900,
        _ => 100,
    };
    let two = |x: u32, y: u32| match (x, y) {
        (1..=2, 1..=2) | (6..=7, 6..=7) => 900,
        _ => 100,
    };
    let d = s.examine(&frame(0, 16, 16, one)).unwrap();
    assert_eq!((d.signal, d.events.len()), (1.0, 0));
    let d = s.examine(&frame(1, 16, 16, two)).unwrap();
    assert_eq!(d.signal, 2.0);
    assert_eq!(
        d.events[0].values,
        vec![("previous_count", 1.0), ("delta", 1.0)]
    );
    assert!(s.examine(&frame(2, 16, 16, two)).unwrap().events.is_empty());
}

#[test]
fn bad_parameters_name_the_key() {
    let keys = |text: &str| -> Vec<&'static str> {
        params(text)
            .problems()
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    };
    assert_eq!(keys("detector = \"roi_mean\""), vec!["threshold"]);
    assert_eq!(
        keys("detector = \"activity\"\nthreshold = 1.0\nmodel = \"x\""),
        vec!["model"]
    );
    assert_eq!(keys("detector = \"model\""), vec!["model"]);
    assert_eq!(
        keys("detector = \"model\"\nmodel = \"/nonexistent\""),
        vec!["model"]
    );
    assert_eq!(
        keys("detector = \"roi_mean\"\nthreshold = 1.0\nroi = [0, 0, 0, 5]"),
        vec!["roi"]
    );
    assert_eq!(
        keys("detector = \"roi_mean\"\nthreshold = 1.0\nevent_kind = \"a b\""),
        vec!["event_kind"]
    );
    assert!(toml::from_str::<DetectParams>("detector = \"magic\"").is_err());
}

#[test]
fn synthetic_frames_pass_through_without_detection() {
    use crate::pipeline::output::Output;
    use crate::pipeline::stats::StageStats;
    use crate::sink::subscribers::SubscriberHub;
    let (tx, rx) = crate::events::engine_channel();
    let p = params("detector = \"roi_mean\"\nthreshold = 0.0");
    let mut s = DetectStage::new("det", "raw", &p, &InferenceConfig::default(), Some(tx)).unwrap();
    let hub = SubscriberHub::new("det", Default::default());
    let sub = hub.subscribe(8);
    let output = Output::new(Vec::new(), hub.clone());
    let stats = StageStats::default();
    let measured = frame(0, 4, 4, |_, _| 10);
    let mut synthetic_meta = *measured.meta();
    synthetic_meta.synthetic = true;
    let synthetic = Frame::standalone(measured.spec(), synthetic_meta, Pixels::U16(vec![10; 16]));
    for f in [&measured, &synthetic] {
        s.process(f, &mut Emitter::new(&output, &stats)).unwrap();
    }
    assert!(
        sub.recv_timeout(std::time::Duration::ZERO)
            .unwrap()
            .same_buffer(&measured)
    );
    assert!(
        sub.recv_timeout(std::time::Duration::ZERO)
            .unwrap()
            .same_buffer(&synthetic)
    );
    assert_eq!(rx.len(), 1, "one detection, for the measured frame only");
}
