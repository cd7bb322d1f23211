use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::*;
use crate::frame::{FrameSpec, PixelType};
use crate::pipeline::output::Output;
use crate::pipeline::stats::StageStats;
use crate::sink::subscribers::SubscriberHub;

const W: u32 = 6;
const H: u32 = 4;

fn frame(number: u64, value: u16) -> Frame {
    let spec = FrameSpec::new(W, H, PixelType::U16);
    let meta = FrameMeta::arriving_now(number, 1_000 + number * 100_000);
    Frame::standalone(spec, meta, Pixels::U16(vec![value; spec.pixel_count()]))
}

fn params(method: &str, factor: u32, max_gap: u64) -> InterpolateParams {
    let text = format!("method = {method:?}\nfactor = {factor}\nmax_gap = {max_gap}");
    toml::from_str(&text).expect("valid params")
}

/// Run `frames` through a stage and collect what it emits (and its counters).
fn run(params: &InterpolateParams, frames: &[Frame]) -> (Vec<Frame>, StageStats) {
    let hub = SubscriberHub::new("interpolated", Arc::new(AtomicU64::new(0)));
    let sub = hub.subscribe(1024);
    let output = Output::new(Vec::new(), hub);
    let stats = StageStats::default();
    let mut stage = InterpolateStage::new(params, &InferenceConfig::default()).expect("stage");
    for f in frames {
        let mut out = Emitter::new(&output, &stats);
        stage.process(f, &mut out).expect("process");
    }
    let mut got = Vec::new();
    while let Ok(f) = sub.recv_timeout(Duration::from_millis(10)) {
        got.push(f);
    }
    (got, stats)
}

fn first_value(f: &Frame) -> f32 {
    f.pixels().get_f32(0)
}

#[test]
fn linear_factor_two_emits_the_midpoint_flagged_synthetic_then_the_measured_frame() {
    let input = [frame(10, 100), frame(11, 301), frame(12, 101)];
    let (got, stats) = run(&params("linear", 2, 1), &input);
    let summary: Vec<(u64, bool, f32)> = got
        .iter()
        .map(|f| (f.meta().frame_number, f.meta().synthetic, first_value(f)))
        .collect();
    assert_eq!(
        summary,
        vec![
            (10, false, 100.0),
            (10, true, 201.0), // 200.5 rounded to the nearest integer of the u16 stream
            (11, false, 301.0),
            (11, true, 201.0),
            (12, false, 101.0),
        ]
    );
    // Measured frames leave unchanged (the same buffer), in the input's pixel type.
    assert!(got[2].same_buffer(&input[1]));
    assert!(got.iter().all(|f| f.spec() == input[0].spec()));
    // The generated frame sits halfway in camera time and is made when frame t+1 arrives.
    let mid = got[1].meta();
    assert_eq!(mid.camera_timestamp_ns, 1_000 + 10 * 100_000 + 50_000);
    assert_eq!(mid.arrival, input[1].meta().arrival);
    assert_eq!(stats.frames_out.load(Ordering::Relaxed), 5);
    assert_eq!(stats.synthetic_out.load(Ordering::Relaxed), 2);
    assert_eq!(stats.gaps_skipped.load(Ordering::Relaxed), 0);
}

#[test]
fn factor_four_generates_three_frames_at_quarter_times() {
    let (got, _) = run(&params("linear", 4, 1), &[frame(0, 0), frame(1, 400)]);
    let values: Vec<f32> = got.iter().map(first_value).collect();
    assert_eq!(values, vec![0.0, 100.0, 200.0, 300.0, 400.0]);
    let times: Vec<u64> = got.iter().map(|f| f.meta().camera_timestamp_ns).collect();
    assert_eq!(times, vec![1_000, 26_000, 51_000, 76_000, 101_000]);
    assert_eq!(
        got.iter().map(|f| f.meta().synthetic).collect::<Vec<_>>(),
        vec![false, true, true, true, false]
    );
}

#[test]
fn a_gap_larger_than_max_gap_is_skipped_and_counted_not_interpolated_across() {
    // Frame 2 was lost upstream.
    let input = [frame(0, 0), frame(1, 100), frame(3, 300)];
    let (got, stats) = run(&params("linear", 2, 1), &input);
    let numbers: Vec<(u64, bool)> = got
        .iter()
        .map(|f| (f.meta().frame_number, f.meta().synthetic))
        .collect();
    assert_eq!(numbers, vec![(0, false), (0, true), (1, false), (3, false)]);
    assert_eq!(stats.gaps_skipped.load(Ordering::Relaxed), 1);
    assert_eq!(stats.synthetic_out.load(Ordering::Relaxed), 1);
}

#[test]
fn a_gap_within_max_gap_is_filled_at_the_output_rate() {
    // With max_gap 2 the lost frame 2 is regenerated too: 2 * 2 - 1 frames between 1 and 3.
    let input = [frame(1, 100), frame(3, 500)];
    let (got, stats) = run(&params("linear", 2, 2), &input);
    let values: Vec<f32> = got.iter().map(first_value).collect();
    assert_eq!(values, vec![100.0, 200.0, 300.0, 400.0, 500.0]);
    assert_eq!(stats.gaps_skipped.load(Ordering::Relaxed), 0);
    assert_eq!(stats.synthetic_out.load(Ordering::Relaxed), 3);
}

#[test]
fn duplicate_repeats_the_nearer_measured_frame() {
    let (got, _) = run(&params("duplicate", 4, 1), &[frame(0, 7), frame(1, 9)]);
    let values: Vec<f32> = got.iter().map(first_value).collect();
    // tau 0.25 and 0.5 take frame 0, tau 0.75 frame 1.
    assert_eq!(values, vec![7.0, 7.0, 7.0, 9.0, 9.0]);
}

#[test]
fn renumbering_or_a_size_change_never_interpolates_between_unrelated_frames() {
    let other_size = Frame::standalone(
        FrameSpec::new(W + 2, H, PixelType::U16),
        FrameMeta::arriving_now(2, 0),
        Pixels::U16(vec![5; ((W + 2) * H) as usize]),
    );
    // 5 -> 1: the source restarted its numbering; 1 -> 2: another frame size.
    let input = [frame(5, 0), frame(1, 10), other_size];
    let (got, stats) = run(&params("linear", 2, 1), &input);
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|f| !f.meta().synthetic));
    assert_eq!(stats.gaps_skipped.load(Ordering::Relaxed), 0);
}

#[test]
fn generated_u16_values_are_rounded_and_clamped() {
    let mut p = Pixels::U16(vec![0; 4]);
    p.store_f32(&[-3.0, 1.5, 70_000.0, f32::NAN]);
    assert_eq!(p, Pixels::U16(vec![0, 2, 65_535, 0]));
}

#[test]
fn parameters_name_what_is_wrong() {
    let problems = |text: &str| {
        let p: InterpolateParams = toml::from_str(text).expect("parses");
        p.problems()
    };
    assert_eq!(problems("method = \"linear\"").len(), 0);
    let none = problems("factor = 2");
    assert_eq!(none[0].0, "method", "{none:?}");
    let conflict = problems("method = \"linear\"\nmodel = \"x\"");
    assert!(
        conflict
            .iter()
            .any(|(k, p)| *k == "model" && p.contains("only used with method"))
    );
    let factor = problems("method = \"linear\"\nfactor = 1");
    assert_eq!(factor[0].0, "factor", "{factor:?}");
    let gap = problems("method = \"linear\"\nmax_gap = 0");
    assert_eq!(gap[0].0, "max_gap", "{gap:?}");
    let missing = problems("model = \"/nonexistent/interpolator\"");
    assert!(missing.iter().any(|(k, _)| *k == "model"), "{missing:?}");
    let unknown: Result<InterpolateParams, _> = toml::from_str("method = \"cubic\"");
    assert!(unknown.unwrap_err().to_string().contains("cubic"));
}
