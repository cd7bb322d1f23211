//! Frame interpolation at 512x512 (or `SCOPEPILOT_BENCH_SIZE`) on this CPU, one model, one
//! thread count, same frames:
//!
//! - (a) `bare_ort`: a plain ONNX Runtime loop making the midpoint frame of two camera frames
//!   (u16 -> f32 planes frame0, frame1 and a constant tau plane, `Session::run` on the whole
//!   frame, copy the output out), the least any program must do per generated frame;
//! - (b) `stage`: the daemon's `interpolate` stage (learned model, factor 2) processing
//!   consecutive frames: per input frame it generates the midpoint and then lets frame t+1
//!   leave, so its time per frame is the latency it adds before t+1 leaves the stage;
//! - (c) the same stage with `method = "linear"`, for scale.
//!
//! Rounds alternate (a), (b), (c) (`SCOPEPILOT_BENCH_ROUNDS`, default 5) and the medians are
//! reported, with (b)/(a). `SCOPEPILOT_BENCH_MODEL` (default `models/interpolate-fast`),
//! `SCOPEPILOT_BENCH_FRAMES` (per round, default 40), `SCOPEPILOT_BENCH_THREADS` (2).
//!
//! ```text
//! cargo bench --bench interpolate
//! ```
//!
//! Without `--bench` (as `cargo test --benches` runs it) it makes one short round as a smoke
//! test.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use scopepilot::frame::{Frame, FrameMeta, FrameSpec, PixelType, Pixels};
use scopepilot::inference::InferenceConfig;
use scopepilot::pipeline::interpolate::{InterpolateParams, InterpolateStage};
use scopepilot::pipeline::output::Output;
use scopepilot::pipeline::stage::{Emitter, Stage};
use scopepilot::pipeline::stats::StageStats;
use scopepilot::sink::subscribers::SubscriberHub;
use support::{bare_session, env_or, quantile_ms, simulated_frames};

const DISTINCT: usize = 8;
const WARMUP: usize = 3;

/// Median and p99 per generated frame, and generated frames per second.
#[derive(Debug, Clone, Copy)]
struct Run {
    p50_ms: f64,
    p99_ms: f64,
    fps: f64,
}

fn summarise(mut times: Vec<Duration>) -> Run {
    let total: Duration = times.iter().sum();
    let fps = times.len() as f64 / total.as_secs_f64();
    times.sort();
    Run {
        p50_ms: quantile_ms(&times, 0.5),
        p99_ms: quantile_ms(&times, 0.99),
        fps,
    }
}

/// (a): the bare ONNX Runtime loop.
fn bare_ort(
    session: &mut ort::session::Session,
    frames: &[Vec<u16>],
    side: usize,
    n: usize,
) -> Run {
    let plane = side * side;
    let mut input = vec![0.0f32; 3 * plane];
    let mut out = vec![0.0f32; plane];
    let mut times = Vec::with_capacity(n);
    for i in 0..WARMUP + n {
        let t0 = Instant::now();
        let (a, b) = (&frames[i % DISTINCT], &frames[(i + 1) % DISTINCT]);
        for (v, &p) in input[..plane].iter_mut().zip(a) {
            *v = p as f32;
        }
        for (v, &p) in input[plane..2 * plane].iter_mut().zip(b) {
            *v = p as f32;
        }
        input[2 * plane..].fill(0.5);
        let tensor = ort::value::TensorRef::from_array_view(([1usize, 3, side, side], &input[..]))
            .expect("tensor");
        let outputs = session.run(ort::inputs![tensor]).expect("run");
        let (_, data) = outputs[0].try_extract_tensor::<f32>().expect("f32 output");
        out.copy_from_slice(data);
        if i >= WARMUP {
            times.push(t0.elapsed());
        }
    }
    summarise(times)
}

/// (b), (c): the stage, fed consecutive frames; time per input frame until t+1 has left.
fn stage(stage: &mut InterpolateStage, frames: &[Frame], n: usize) -> Run {
    let hub = SubscriberHub::new("interpolated", Arc::new(AtomicU64::new(0)));
    let output = Output::new(Vec::new(), hub);
    let stats = StageStats::default();
    let mut times = Vec::with_capacity(n);
    // The first frame only primes the stage (nothing to interpolate yet).
    let mut out = Emitter::new(&output, &stats);
    stage.process(&frames[0], &mut out).expect("process");
    for (i, f) in frames.iter().enumerate().skip(1).take(WARMUP + n) {
        let t0 = Instant::now();
        let mut out = Emitter::new(&output, &stats);
        stage.process(f, &mut out).expect("process");
        if i > WARMUP {
            times.push(t0.elapsed());
        }
    }
    summarise(times)
}

fn make_stage(params: &str, threads: usize) -> InterpolateStage {
    let params: InterpolateParams = toml::from_str(params).expect("params");
    let inference = InferenceConfig {
        intra_threads: threads,
        ..InferenceConfig::default()
    };
    InterpolateStage::new(&params, &inference).unwrap_or_else(|e| panic!("{e}"))
}

fn median(v: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = v.collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let model = PathBuf::from(std::env::var("SCOPEPILOT_BENCH_MODEL").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/models/interpolate-fast").into()
    }));
    let side: usize = env_or("SCOPEPILOT_BENCH_SIZE", if bench { 512 } else { 128 });
    let n: usize = if bench {
        env_or("SCOPEPILOT_BENCH_FRAMES", 40)
    } else {
        2
    };
    let rounds: usize = if bench {
        env_or("SCOPEPILOT_BENCH_ROUNDS", 5)
    } else {
        1
    };
    let threads: usize = env_or("SCOPEPILOT_BENCH_THREADS", 2);
    let pixels = simulated_frames(side, DISTINCT);
    let spec = FrameSpec::new(side as u32, side as u32, PixelType::U16);
    let frames: Vec<Frame> = (0..=WARMUP + n)
        .map(|i| {
            let meta = FrameMeta::arriving_now(i as u64, i as u64 * 20_000_000);
            Frame::standalone(spec, meta, Pixels::U16(pixels[i % DISTINCT].clone()))
        })
        .collect();
    println!(
        "model {} | {side}x{side} u16 | factor 2 | {n} frames x {rounds} rounds | {threads} ONNX Runtime threads",
        model.display()
    );
    let mut session = bare_session(Path::new(&model), threads);
    let model_param = format!(
        "model = {:?}\nfactor = 2\ntile = {side}",
        model.display().to_string()
    );
    let mut learned = make_stage(&model_param, threads);
    let mut linear = make_stage("method = \"linear\"\nfactor = 2", threads);
    let mut runs: Vec<[Run; 3]> = Vec::new();
    for round in 1..=rounds {
        let a = bare_ort(&mut session, &pixels, side, n);
        let b = stage(&mut learned, &frames, n);
        let c = stage(&mut linear, &frames, n);
        println!(
            "round {round}: (a) bare ORT p50 {:.2} ms | (b) stage p50 {:.2} ms | (c) linear p50 {:.2} ms",
            a.p50_ms, b.p50_ms, c.p50_ms
        );
        runs.push([a, b, c]);
    }
    let med = |k: usize, f: fn(&Run) -> f64| median(runs.iter().map(|r| f(&r[k])));
    let names = [
        "(a) bare ONNX Runtime loop",
        "(b) interpolate stage, learned",
        "(c) interpolate stage, linear",
    ];
    println!("medians over rounds, per generated frame (factor 2: one per input frame):");
    for (k, name) in names.iter().enumerate() {
        println!(
            "  {name:32} {:7.1} frames/s   p50 {:6.2} ms   p99 {:6.2} ms",
            med(k, |r| r.fps),
            med(k, |r| r.p50_ms),
            med(k, |r| r.p99_ms)
        );
    }
    println!(
        "  (b)/(a) throughput {:.3}; added latency before frame t+1 leaves the stage: p50 {:.2} ms",
        med(1, |r| r.fps) / med(0, |r| r.fps),
        med(1, |r| r.p50_ms)
    );
}
