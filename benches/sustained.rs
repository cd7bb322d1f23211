//! Opt-in real-time check (not a criterion bench): can a simulated 512x512 source at 100 fps
//! feeding the Gaussian stage keep its frame rate for minutes on this machine?
//!
//! Skipped unless `SCOPEPILOT_SUSTAINED_SECS` is set, so `cargo bench` and `cargo test` stay
//! fast. Run it with, for example:
//!
//! ```text
//! SCOPEPILOT_SUSTAINED_SECS=150 cargo bench --bench sustained
//! ```
//!
//! Optional: `SCOPEPILOT_SUSTAINED_SIZE` (square side, default 512), `SCOPEPILOT_SUSTAINED_FPS`
//! (default 100). The topology is the classical half of `config/default.toml` (no learned stage;
//! `scripts/bench-denoise.sh` measures that): ring of 64 (drop_oldest), source
//! pool of 80 frames, `gaussian` stage (sigma 1.5, queue 8 drop_oldest), one subscriber of the
//! `gaussian` stream (queue 4) that drains it. The camera loop is the one of
//! `source::runner::SourceThread`, written out here so the source's late-frame counter (which the
//! runner does not expose) and the camera thread's CPU time can be read.
//!
//! Every 10 s it prints: frames captured, frames late on the schedule (the pacer restarts the
//! schedule instead of bursting, so late frames mean a lower frame rate), nuclei in the scene,
//! the camera thread's CPU time per frame (from `/proc/thread-self/schedstat`), frames dropped
//! by the ring and by the Gaussian queue, stage errors, frames at the subscriber, and the
//! Gaussian stream's arrival-to-emit latency quantiles.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use scopepilot::frame::FramePool;
use scopepilot::pipeline::queue::{QueueConfig, QueuePolicy};
use scopepilot::pipeline::{Pipeline, StageConfig, StageContext, StageKind, Taps};
use scopepilot::ring::{OverflowPolicy, ingest_ring};
use scopepilot::source::simulated::{SimulatedConfig, SimulatedSource};
use scopepilot::source::{Capture, FrameInterval, FrameSource};
use support::env_or;

const RING_CAPACITY: usize = 64;
const WINDOW: Duration = Duration::from_secs(10);

/// CPU time of the calling thread in nanoseconds (Linux schedstat), if available.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

#[derive(Default)]
struct CameraCounters {
    captured: AtomicU64,
    late: AtomicU64,
    lost_no_buffer: AtomicU64,
    cpu_ns: AtomicU64,
    nuclei: AtomicU64,
}

fn main() {
    let Some(secs) = std::env::var("SCOPEPILOT_SUSTAINED_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        println!("sustained: skipped (set SCOPEPILOT_SUSTAINED_SECS=150 to run it)");
        return;
    };
    let side: u32 = env_or("SCOPEPILOT_SUSTAINED_SIZE", 512);
    let fps: f64 = env_or("SCOPEPILOT_SUSTAINED_FPS", 100.0);

    let mut params = toml::Table::new();
    params.insert("sigma".into(), toml::Value::Float(1.5));
    let stages = vec![StageConfig {
        name: "gaussian".into(),
        kind: StageKind::Gaussian,
        input: Some("raw".into()),
        queue: QueueConfig {
            capacity: 8,
            policy: QueuePolicy::DropOldest,
        },
        params,
        nice: None,
    }];
    let taps = Taps::new(&stages);
    let (mut producer, consumer) = ingest_ring(RING_CAPACITY, OverflowPolicy::DropOldest);
    let ring = producer.stats();
    let subscription = taps.get("gaussian").expect("stream").subscribe(4);
    let pipeline = Pipeline::start(
        consumer,
        "drop_oldest",
        RING_CAPACITY,
        &stages,
        &StageContext::default(),
        &taps,
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let cfg = SimulatedConfig {
        width: side,
        height: side,
        frame_rate_hz: fps,
        ..SimulatedConfig::default()
    };
    let mut source =
        SimulatedSource::new(cfg, FrameInterval::from_rate_hz(fps)).expect("valid config");
    let counters = Arc::new(CameraCounters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (c2, stop2) = (counters.clone(), stop.clone());
    let camera = std::thread::Builder::new()
        .name("camera-simulated".into())
        .spawn(move || {
            let mut pool = FramePool::new(source.spec(), RING_CAPACITY + 16, RING_CAPACITY + 16);
            let cpu0 = thread_cpu_ns().unwrap_or(0);
            while !stop2.load(Ordering::Relaxed) {
                match source.capture(&mut pool).expect("capture") {
                    Capture::Frame(f) => {
                        c2.captured.fetch_add(1, Ordering::Relaxed);
                        producer.push(f);
                    }
                    Capture::Lost { .. } => {
                        c2.lost_no_buffer.fetch_add(1, Ordering::Relaxed);
                    }
                    Capture::Idle | Capture::End => {}
                }
                c2.late.store(source.late_frames(), Ordering::Relaxed);
                c2.nuclei
                    .store(source.scene().nucleus_count() as u64, Ordering::Relaxed);
                if let Some(t) = thread_cpu_ns() {
                    c2.cpu_ns.store(t - cpu0, Ordering::Relaxed);
                }
            }
            drop(producer);
        })
        .expect("camera thread");

    println!(
        "sustained: {side}x{side} u16 at {fps} fps for {secs} s, gaussian sigma 1.5, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:>5} {:>8} {:>6} {:>6} {:>11} {:>9} {:>9} {:>7} {:>9} {:>13}",
        "t_s",
        "captured",
        "late",
        "nuclei",
        "cam_cpu/fr",
        "ring_drop",
        "gaus_drop",
        "errors",
        "delivered",
        "lat_p50/p99"
    );
    let start = Instant::now();
    let mut next_report = start + WINDOW;
    let (mut last_captured, mut last_late, mut last_cpu) = (0u64, 0u64, 0u64);
    let (mut delivered, mut last_delivered) = (0u64, 0u64);
    let (mut total_captured, mut total_late) = (0u64, 0u64);
    let end = start + Duration::from_secs(secs);
    while Instant::now() < end {
        if subscription.recv_timeout(Duration::from_millis(50)).is_ok() {
            delivered += 1;
        }
        if Instant::now() >= next_report {
            next_report += WINDOW;
            let captured = counters.captured.load(Ordering::Relaxed);
            let late = counters.late.load(Ordering::Relaxed);
            let cpu = counters.cpu_ns.load(Ordering::Relaxed);
            let frames = (captured - last_captured).max(1);
            let infos = pipeline.infos();
            let g = &infos[1].stats;
            println!(
                "{:>5.0} {:>8} {:>6} {:>6} {:>8.2} ms {:>9} {:>9} {:>7} {:>9} {:>6.0}/{:<6.0}",
                start.elapsed().as_secs_f64(),
                captured - last_captured,
                late - last_late,
                counters.nuclei.load(Ordering::Relaxed),
                (cpu - last_cpu) as f64 / frames as f64 / 1e6,
                ring.counters().dropped(),
                g.dropped.load(Ordering::Relaxed),
                g.errors.load(Ordering::Relaxed),
                delivered - last_delivered,
                g.latency.quantile_us(0.5),
                g.latency.quantile_us(0.99),
            );
            total_captured = captured;
            total_late = late;
            (last_captured, last_late, last_cpu, last_delivered) = (captured, late, cpu, delivered);
        }
    }
    stop.store(true, Ordering::Relaxed);
    camera.join().expect("camera thread");
    drop(subscription);
    pipeline.stop();
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "sustained: {total_captured} frames reported in {elapsed:.0} s, {total_late} late, \
         lost (no buffer) {}, ring drops {}",
        counters.lost_no_buffer.load(Ordering::Relaxed),
        ring.counters().dropped()
    );
}
