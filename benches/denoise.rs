//! Denoising throughput and latency on one model, one input and one thread count:
//!
//! - (a) `bare_ort`: a plain ONNX Runtime loop (u16 -> f32, `Session::run` on the whole
//!   frame, copy the output out), the least any program must do;
//! - (b) `pipeline`: the daemon's pipeline (frames pushed into the ingest ring, the ingest
//!   thread, a `denoise` stage behind a blocking queue, output frames from the stage's pool),
//!   fed as fast as it takes frames (throughput), then paced at half that rate with a
//!   subscriber timing every frame from arrival to delivery (latency).
//!
//! The Python pipeline (c) runs from `scripts/bench-denoise.sh`, which also runs this bench
//! and writes the comparison table. Settings come from the environment:
//! `SCOPEPILOT_BENCH_MODEL` (default `models/denoise-fast-nuclei`), `SCOPEPILOT_BENCH_FRAMES`
//! (200), `SCOPEPILOT_BENCH_SIZE` (512), `SCOPEPILOT_BENCH_THREADS` (2) and
//! `SCOPEPILOT_BENCH_STACK_OUT` (write the input frames there as a `.npy` for the Python
//! pipeline). The last line printed is a JSON summary.
//!
//! ```text
//! cargo bench --bench denoise
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod support;

use scopepilot::frame::{FramePool, FrameSpec, PixelType, Pixels};
use scopepilot::inference::InferenceConfig;
use scopepilot::pipeline::queue::{QueueConfig, QueuePolicy};
use scopepilot::pipeline::{Pipeline, StageConfig, StageContext, StageKind, Taps};
use scopepilot::ring::{OverflowPolicy, ingest_ring};
use support::{bare_session, env_or, quantile_ms, simulated_frames};

/// Distinct simulated frames, cycled through.
const DISTINCT: usize = 16;
const WARMUP: usize = 5;

/// Write `frames` as a `(n, side, side)` uint16 `.npy`.
fn write_npy(path: &std::path::Path, frames: &[Vec<u16>], side: usize) -> std::io::Result<()> {
    let mut header = format!(
        "{{'descr': '<u2', 'fortran_order': False, 'shape': ({}, {side}, {side}), }}",
        frames.len()
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    for f in frames {
        bytes.extend(f.iter().flat_map(|p| p.to_le_bytes()));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, bytes)
}

struct Run {
    fps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// (a): the bare ONNX Runtime loop.
fn bare_ort(model: &Path, frames: &[Vec<u16>], side: usize, n: usize, threads: usize) -> Run {
    let mut session = bare_session(model, threads);
    let mut input = vec![0.0f32; side * side];
    let mut out = vec![0.0f32; side * side];
    let mut times = Vec::with_capacity(WARMUP + n);
    for i in 0..WARMUP + n {
        if i == WARMUP {
            times.clear();
        }
        let t0 = Instant::now();
        for (v, &p) in input.iter_mut().zip(&frames[i % DISTINCT]) {
            *v = p as f32;
        }
        let tensor = ort::value::TensorRef::from_array_view(([1usize, 1, side, side], &input[..]))
            .expect("tensor");
        let outputs = session.run(ort::inputs![tensor]).expect("run");
        let (_, data) = outputs[0].try_extract_tensor::<f32>().expect("f32 output");
        out.copy_from_slice(data);
        times.push(t0.elapsed());
    }
    let total: Duration = times.iter().sum();
    times.sort();
    Run {
        fps: n as f64 / total.as_secs_f64(),
        p50_ms: quantile_ms(&times, 0.5),
        p99_ms: quantile_ms(&times, 0.99),
    }
}

/// (b): frames through the daemon's pipeline. `interval` None = as fast as it takes them.
fn pipeline(
    model: &Path,
    frames: &[Vec<u16>],
    side: usize,
    n: usize,
    threads: usize,
    interval: Option<Duration>,
) -> Run {
    let mut params = toml::Table::new();
    params.insert(
        "model".into(),
        toml::Value::String(model.display().to_string()),
    );
    // The whole frame in one piece, the same work as the bare loop.
    params.insert("tile".into(), toml::Value::Integer(side as i64));
    let stages = vec![StageConfig {
        name: "denoised".into(),
        kind: StageKind::Denoise,
        input: Some("raw".into()),
        queue: QueueConfig {
            capacity: 4,
            policy: QueuePolicy::Block,
        },
        params,
        nice: None,
    }];
    let ctx = StageContext {
        inference: InferenceConfig {
            intra_threads: threads,
            ..InferenceConfig::default()
        },
        events: None,
    };
    let taps = Taps::new(&stages);
    let subscription = taps.get("denoised").expect("stream").subscribe(64);
    let (mut producer, consumer) = ingest_ring(64, OverflowPolicy::DropOldest);
    let running = Pipeline::start(consumer, "drop_oldest", 64, &stages, &ctx, &taps)
        .unwrap_or_else(|e| panic!("{e}"));
    let stats = running.infos()[1].stats.clone();
    let spec = FrameSpec::new(side as u32, side as u32, PixelType::U16);
    let mut pool = FramePool::new(spec, 16, 32);
    let mut latencies = Vec::with_capacity(WARMUP + n);
    let schedule = Instant::now();
    let mut measured_from = schedule;
    let (mut sent, mut received) = (0usize, 0usize);
    while received < WARMUP + n {
        // Keep a few frames in flight (saturated), or send each on its schedule (paced).
        let due = sent < WARMUP + n
            && match interval {
                None => sent - received < 3,
                Some(iv) => schedule.elapsed() >= iv * sent as u32,
            };
        if due {
            let mut w = pool.acquire().expect("free frame");
            if let Pixels::U16(px) = w.pixels_mut() {
                px.copy_from_slice(&frames[sent % DISTINCT]);
            }
            w.meta_mut().frame_number = sent as u64;
            let _ = producer.push(w.publish_arrived());
            sent += 1;
            continue;
        }
        // Sleep until a frame comes out or the next one is due: polling would take CPU time
        // from the inference threads (two threads on two cores: any wake-up delays them).
        let wait = match interval {
            Some(iv) if sent < WARMUP + n => (iv * sent as u32).saturating_sub(schedule.elapsed()),
            _ => Duration::from_millis(200),
        };
        match subscription.recv_timeout(wait) {
            Ok(frame) => {
                latencies.push(frame.meta().arrival.elapsed());
                received += 1;
                if received == WARMUP {
                    measured_from = Instant::now();
                }
            }
            Err(true) => {} // timed out: time to send
            Err(false) => panic!("the pipeline stopped"),
        }
    }
    let elapsed = measured_from.elapsed();
    let mut latencies = latencies.split_off(WARMUP);
    let dropped = stats.dropped.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(dropped, 0, "a blocking queue drops nothing");
    drop(producer);
    running.stop();
    latencies.sort();
    Run {
        fps: n as f64 / elapsed.as_secs_f64(),
        p50_ms: quantile_ms(&latencies, 0.5),
        p99_ms: quantile_ms(&latencies, 0.99),
    }
}

fn main() {
    let model = PathBuf::from(std::env::var("SCOPEPILOT_BENCH_MODEL").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/models/denoise-fast-nuclei").into()
    }));
    let n: usize = env_or("SCOPEPILOT_BENCH_FRAMES", 200);
    let side: usize = env_or("SCOPEPILOT_BENCH_SIZE", 512);
    let threads: usize = env_or("SCOPEPILOT_BENCH_THREADS", 2);
    let frames = simulated_frames(side, DISTINCT);
    if let Ok(out) = std::env::var("SCOPEPILOT_BENCH_STACK_OUT") {
        write_npy(std::path::Path::new(&out), &frames, side).expect("write the frame stack");
    }
    println!(
        "model {} | {side}x{side} u16 | {n} frames (+{WARMUP} warm-up) | {threads} ONNX Runtime threads",
        model.display()
    );
    let a = bare_ort(&model, &frames, side, n, threads);
    println!(
        "(a) bare ONNX Runtime loop:   {:7.2} frames/s   p50 {:6.2} ms   p99 {:6.2} ms",
        a.fps, a.p50_ms, a.p99_ms
    );
    let b = pipeline(&model, &frames, side, n, threads, None);
    println!(
        "(b) daemon pipeline:          {:7.2} frames/s   (as fast as it takes frames; {:.3}x of (a))",
        b.fps,
        b.fps / a.fps
    );
    let paced = Duration::from_secs_f64(1.0 / (0.5 * b.fps));
    let l = pipeline(&model, &frames, side, n, threads, Some(paced));
    println!(
        "(b) paced at {:5.1} frames/s:  arrival-to-subscriber latency p50 {:6.2} ms   p99 {:6.2} ms",
        1.0 / paced.as_secs_f64(),
        l.p50_ms,
        l.p99_ms
    );
    println!(
        "{{\"model\": {:?}, \"size\": {side}, \"frames\": {n}, \"threads\": {threads}, \"bare_fps\": {:.3}, \"bare_p50_ms\": {:.3}, \"bare_p99_ms\": {:.3}, \"pipeline_fps\": {:.3}, \"paced_fps\": {:.3}, \"pipeline_p50_ms\": {:.3}, \"pipeline_p99_ms\": {:.3}}}",
        model.display().to_string(),
        a.fps,
        a.p50_ms,
        a.p99_ms,
        b.fps,
        1.0 / paced.as_secs_f64(),
        l.p50_ms,
        l.p99_ms
    );
}
