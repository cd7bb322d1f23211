//! Per-frame ingest cost at 2048x2048 u16 vs 64x64 u16.
//!
//! `ingest_per_frame/<size>` runs, on one thread, everything a frame goes through between the
//! camera and a stage's input queue, without touching its pixels (a camera DMA fills them):
//! acquire a slot from a `FramePool`, set metadata, publish, push into the ingest ring, pop,
//! emit it on the `raw` stream (an `Emitter` over an `Output` fanning out to one stage queue
//! and the raw subscriber hub, as the pipeline's ingest thread does), take it from the stage
//! queue and drop it (the slot returns to the pool). Zero-copy means both sizes cost the same.
//!
//! `ingest_copy_in/<size>` is the contrast: copying the pixels into the slot once, as a source
//! that cannot write into pool memory would have to (one memcpy of the frame).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use scopepilot::frame::{FramePool, FrameSpec, PixelType, Pixels};
use scopepilot::pipeline::output::Output;
use scopepilot::pipeline::queue::{QueueConfig, stage_queue};
use scopepilot::pipeline::stage::Emitter;
use scopepilot::pipeline::stats::StageStats;
use scopepilot::ring::{OverflowPolicy, ingest_ring};
use scopepilot::sink::subscribers::SubscriberHub;

const SIZES: [(u32, &str); 2] = [(64, "u16_64x64"), (2048, "u16_2048x2048")];

fn ingest(c: &mut Criterion) {
    let mut group = c.benchmark_group("ingest_per_frame");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (side, name) in SIZES {
        let spec = FrameSpec::new(side, side, PixelType::U16);
        let mut pool = FramePool::new(spec, 4, 4);
        let (mut producer, consumer) = ingest_ring(8, OverflowPolicy::DropOldest);
        let raw_stats = StageStats::default();
        let stage_stats = Arc::new(StageStats::default());
        let (to_stage, stage_rx) = stage_queue(QueueConfig::default(), stage_stats);
        let hub = SubscriberHub::new("raw", Arc::new(AtomicU64::new(0)));
        let output = Output::new(vec![to_stage], hub);
        let mut n = 0u64;
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                let mut w = pool.acquire().expect("the previous frame was released");
                let meta = w.meta_mut();
                meta.frame_number = n;
                meta.camera_timestamp_ns = n * 10_000_000;
                meta.arrival = Instant::now();
                meta.exposure_us = 10_000;
                n += 1;
                producer.push(w.publish());
                let frame = consumer.try_pop().expect("just pushed");
                Emitter::new(&output, &raw_stats).emit(frame);
                let at_stage = stage_rx.try_recv().expect("queued for the stage");
                black_box(at_stage.meta().frame_number)
                // `at_stage` drops here: the slot is free again.
            })
        });
    }
    group.finish();
}

fn copy_in(c: &mut Criterion) {
    let mut group = c.benchmark_group("ingest_copy_in");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (side, name) in SIZES {
        let spec = FrameSpec::new(side, side, PixelType::U16);
        group.throughput(Throughput::Bytes(spec.byte_len() as u64));
        let mut pool = FramePool::new(spec, 2, 2);
        let camera_buffer: Vec<u16> = (0..spec.pixel_count()).map(|i| i as u16).collect();
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                let mut w = pool.acquire().expect("the previous frame was released");
                if let Pixels::U16(px) = w.pixels_mut() {
                    px.copy_from_slice(&camera_buffer);
                }
                black_box(w.publish())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, ingest, copy_in);
criterion_main!(benches);
