//! Source-to-subscriber latency through a running `Pipeline`, and the Gaussian blur alone.
//!
//! - `pipeline_latency/<stream>/512x512`: a real pipeline (ingest thread + stage threads) is
//!   started once; each iteration acquires a 512x512 u16 frame, pushes it into the ingest ring
//!   and waits for the result at a subscriber of `<stream>`. The time from just before the push
//!   to the subscriber's `recv` is summed (`iter_custom`), so only one frame is in flight at a
//!   time: this is the unloaded latency. `raw` (ingest thread only, no stage) shows the
//!   handoff part, `gaussian` adds the blur stage (sigma 1.5).
//! - `gaussian_blur/<size>`: `GaussianBlur::apply` on a u16 frame, sigma 1.5, on this thread, same
//!   input and output buffers every time (cache-warm).
//! - `gaussian_stage_process/512x512`: `GaussianStage::process` on this thread (output buffer
//!   from the stage's own pool, emitted to an `Output` with no consumers): the blur plus what
//!   the stage adds, without any thread handoff.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use scopepilot::frame::{FramePool, FrameSpec, PixelType, Pixels};
use scopepilot::pipeline::gaussian::{GaussianBlur, GaussianParams, GaussianStage};
use scopepilot::pipeline::output::Output;
use scopepilot::pipeline::queue::QueueConfig;
use scopepilot::pipeline::stage::{Emitter, Stage};
use scopepilot::pipeline::stats::StageStats;
use scopepilot::pipeline::{Pipeline, StageConfig, StageContext, StageKind, Taps};
use scopepilot::ring::{OverflowPolicy, ingest_ring};
use scopepilot::sink::subscribers::SubscriberHub;

const SIGMA: f32 = 1.5;
const RING_CAPACITY: usize = 16;

fn gaussian_stage() -> StageConfig {
    let mut params = toml::Table::new();
    params.insert("sigma".into(), toml::Value::Float(SIGMA as f64));
    StageConfig {
        name: "gaussian".into(),
        kind: StageKind::Gaussian,
        input: Some("raw".into()),
        queue: QueueConfig::default(),
        params,
        nice: None,
    }
}

/// Some structure in the pixels, so the blur works on realistic values (not needed for speed).
fn fill(px: &mut [u16], width: usize) {
    for (i, p) in px.iter_mut().enumerate() {
        let (x, y) = (i % width, i / width);
        *p = 33_000 + ((x * 7 + y * 13) % 700) as u16;
    }
}

fn pipeline_latency(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipeline_latency");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let spec = FrameSpec::new(512, 512, PixelType::U16);
    for (stream, stages) in [("raw", vec![]), ("gaussian", vec![gaussian_stage()])] {
        let taps = Taps::new(&stages);
        let (mut producer, consumer) = ingest_ring(RING_CAPACITY, OverflowPolicy::DropOldest);
        let subscription = taps.get(stream).expect("stream exists").subscribe(4);
        let pipeline = Pipeline::start(
            consumer,
            "drop_oldest",
            RING_CAPACITY,
            &stages,
            &StageContext::default(),
            &taps,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut pool = FramePool::new(spec, 4, 8);
        // Pre-fill every slot once; later frames reuse them as a camera DMA would.
        let warm: Vec<_> = (0..4)
            .map(|_| {
                let mut w = pool.acquire().expect("free slot");
                if let Pixels::U16(px) = w.pixels_mut() {
                    fill(px, 512);
                }
                w.publish()
            })
            .collect();
        drop(warm);
        let mut n = 0u64;
        group.bench_function(BenchmarkId::new(stream, "512x512"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut w = pool.acquire().expect("frames come back after delivery");
                    let meta = w.meta_mut();
                    meta.frame_number = n;
                    n += 1;
                    let start = Instant::now();
                    meta.arrival = start;
                    producer.push(w.publish());
                    let frame = subscription
                        .recv_timeout(Duration::from_secs(5))
                        .unwrap_or_else(|timeout| {
                            panic!("no frame at the subscriber (timed out: {timeout})")
                        });
                    total += start.elapsed();
                    assert_eq!(frame.meta().frame_number, n - 1, "one frame in flight");
                }
                total
            })
        });
        drop(subscription);
        drop(producer);
        pipeline.stop();
    }
    group.finish();
}

fn blur(c: &mut Criterion) {
    let mut group = c.benchmark_group("gaussian_blur");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for side in [512usize, 2048] {
        let n = side * side;
        group.throughput(Throughput::Elements(n as u64));
        let mut px = vec![0u16; n];
        fill(&mut px, side);
        let input = Pixels::U16(px);
        let (mut gaussian, mut out) = (GaussianBlur::new(SIGMA), vec![0.0f32; n]);
        group.bench_function(
            BenchmarkId::new("u16_sigma1.5", format!("{side}x{side}")),
            |b| {
                b.iter(|| {
                    gaussian.apply(black_box(&input), side, &mut out);
                    black_box(out[n / 2])
                })
            },
        );
    }
    group.finish();
}

fn stage_process(c: &mut Criterion) {
    let mut group = c.benchmark_group("gaussian_stage_process");
    group
        .throughput(Throughput::Elements(512 * 512))
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let spec = FrameSpec::new(512, 512, PixelType::U16);
    let mut pool = FramePool::new(spec, 1, 1);
    let mut w = pool.acquire().expect("free slot");
    if let Pixels::U16(px) = w.pixels_mut() {
        fill(px, 512);
    }
    let input = w.publish();
    let mut stage = GaussianStage::new(GaussianParams {
        sigma: SIGMA,
        ..GaussianParams::default()
    });
    let hub = SubscriberHub::new("gaussian", Arc::new(AtomicU64::new(0)));
    let output = Output::new(Vec::new(), hub);
    let stats = StageStats::default();
    group.bench_function(BenchmarkId::new("u16_sigma1.5", "512x512"), |b| {
        b.iter(|| {
            stage
                .process(black_box(&input), &mut Emitter::new(&output, &stats))
                .expect("output buffers are free")
        })
    });
    group.finish();
}

criterion_group!(benches, pipeline_latency, blur, stage_process);
criterion_main!(benches);
