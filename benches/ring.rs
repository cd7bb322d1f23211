//! Ingest ring handoff: how many frames per second go through `push` -> `pop`.
//!
//! - `ring_handoff/2_threads/*`: a producer thread acquires pooled frames, publishes and pushes
//!   them; the bench thread pops them (like the pipeline's ingest thread) and drops them, which
//!   returns the slot to the pool. The producer waits (yields) while the ring is full so that
//!   no frame is evicted: the number is the loss-free handoff rate, not a drop rate.
//!   `pop_timeout` is the consumer the pipeline uses (parks when empty, woken by `unpark`);
//!   `try_pop_spin` is a busy-polling consumer for comparison.
//! - `ring_push_pop/1_thread/*`: push then pop on one thread, per frame: the cost of the ring
//!   operations themselves (`prebuilt_frame`), and with the pool acquire/publish added
//!   (`pooled_frame`).
//!
//! Frames are 64x64 u16; no pixel is touched, so the frame size does not matter here.

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use scopepilot::frame::{Frame, FrameMeta, FramePool, FrameSpec, PixelType, Pixels};
use scopepilot::ring::{OverflowPolicy, PushOutcome, ingest_ring};

const RING_CAPACITY: usize = 16;

fn spec() -> FrameSpec {
    FrameSpec::new(64, 64, PixelType::U16)
}

#[derive(Clone, Copy)]
enum ConsumerMode {
    PopTimeout,
    TryPopSpin,
}

/// Move `n` pooled frames from a producer thread to this thread; returns the elapsed time from
/// the first acquire to the last pop.
fn handoff(n: u64, mode: ConsumerMode) -> Duration {
    let (mut producer, consumer) = ingest_ring(RING_CAPACITY, OverflowPolicy::DropOldest);
    let ring = producer.stats();
    // Enough slots for a full ring, the frame being popped and the one being written.
    let slots = RING_CAPACITY + 4;
    let mut pool = FramePool::new(spec(), slots, slots);
    // Register this thread as the one `push` unparks before the producer starts.
    let _ = consumer.pop_timeout(Duration::ZERO);
    let start = Instant::now();
    let producer_thread = thread::spawn(move || {
        for i in 0..n {
            while ring.depth() >= RING_CAPACITY {
                thread::yield_now();
            }
            let frame = loop {
                match pool.acquire() {
                    Some(mut w) => {
                        let meta = w.meta_mut();
                        meta.frame_number = i;
                        meta.arrival = Instant::now();
                        break w.publish();
                    }
                    // Every slot is still referenced by a queued frame: the consumer is behind.
                    None => thread::yield_now(),
                }
            };
            let outcome = producer.push(frame);
            debug_assert_eq!(outcome, PushOutcome::Queued);
        }
        producer
    });
    let mut received = 0u64;
    while received < n {
        let frame = match mode {
            ConsumerMode::PopTimeout => consumer.pop_timeout(Duration::from_millis(20)),
            ConsumerMode::TryPopSpin => consumer.try_pop(),
        };
        match frame {
            Some(f) => {
                black_box(f.meta().frame_number);
                received += 1;
            }
            None if matches!(mode, ConsumerMode::TryPopSpin) => std::hint::spin_loop(),
            None => {}
        }
    }
    let elapsed = start.elapsed();
    let producer = producer_thread.join().expect("producer thread");
    let counters = producer.stats();
    assert_eq!(
        counters.counters().dropped(),
        0,
        "the producer waits instead of dropping"
    );
    elapsed
}

fn two_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring_handoff/2_threads");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("pop_timeout", |b| {
        b.iter_custom(|iters| handoff(iters, ConsumerMode::PopTimeout))
    });
    group.bench_function("try_pop_spin", |b| {
        b.iter_custom(|iters| handoff(iters, ConsumerMode::TryPopSpin))
    });
    group.finish();
}

fn one_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring_push_pop/1_thread");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));

    let (mut producer, consumer) = ingest_ring(RING_CAPACITY, OverflowPolicy::DropOldest);
    let prebuilt = Frame::standalone(
        spec(),
        FrameMeta::arriving_now(0, 0),
        Pixels::zeroed(spec()),
    );
    group.bench_function("prebuilt_frame", |b| {
        b.iter(|| {
            producer.push(prebuilt.clone());
            black_box(consumer.try_pop())
        })
    });

    let mut pool = FramePool::new(spec(), 4, 4);
    let mut n = 0u64;
    group.bench_function("pooled_frame", |b| {
        b.iter(|| {
            let mut w = pool.acquire().expect("the previous frame was released");
            let meta = w.meta_mut();
            meta.frame_number = n;
            meta.arrival = Instant::now();
            n += 1;
            producer.push(w.publish());
            black_box(consumer.try_pop())
        })
    });
    group.finish();
}

criterion_group!(benches, two_threads, one_thread);
criterion_main!(benches);
