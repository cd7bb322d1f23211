//! "No per-frame allocation": with a counting global allocator, the steady-state path from
//! the simulated camera through the ingest ring, the raw fan-out, the Gaussian stage and a
//! subscriber allocates nothing. One test in this binary, so no other test allocates
//! concurrently.

use std::sync::atomic::Ordering;
use std::time::Duration;

use scopepilot::frame::FramePool;
use scopepilot::pipeline::queue::{QueueConfig, QueuePolicy};
use scopepilot::pipeline::{Pipeline, StageConfig, StageContext, StageKind, Taps};
use scopepilot::ring::{OverflowPolicy, ingest_ring};
use scopepilot::source::simulated::{SimulatedConfig, SimulatedSource};
use scopepilot::source::{Capture, FrameInterval, FrameSource};

#[path = "alloc_counter/mod.rs"]
mod alloc_counter;

use alloc_counter::{ALLOCATIONS, COUNTING};

#[test]
fn steady_state_frames_allocate_nothing_from_camera_to_subscriber() {
    let stages = vec![StageConfig {
        name: "gaussian".into(),
        kind: StageKind::Gaussian,
        input: Some("raw".into()),
        queue: QueueConfig {
            capacity: 4,
            policy: QueuePolicy::Block,
        },
        params: toml::toml! { sigma = 1.5 },
        nice: None,
    }];
    let taps = Taps::new(&stages);
    let (mut producer, consumer) = ingest_ring(8, OverflowPolicy::DropOldest);
    let pipeline = Pipeline::start(
        consumer,
        "drop_oldest",
        8,
        &stages,
        &StageContext::default(),
        &taps,
    )
    .unwrap();
    let raw_sub = taps.get("raw").unwrap().subscribe(4);
    let sub = taps.get("gaussian").unwrap().subscribe(4);

    let cfg = SimulatedConfig {
        width: 256,
        height: 256,
        ..SimulatedConfig::default()
    };
    let mut source =
        SimulatedSource::new(cfg, FrameInterval::new(Duration::from_micros(100))).unwrap();
    let mut pool = FramePool::new(source.spec(), 16, 16);

    let mut run = |frames: u64, pause: Duration| {
        let mut done = 0;
        while done < frames {
            std::thread::sleep(pause);
            let frame = match source.capture(&mut pool).unwrap() {
                Capture::Frame(f) => f,
                Capture::Idle => continue,
                other => panic!("unexpected {other:?}"),
            };
            let n = frame.meta().frame_number;
            producer.push(frame);
            let out = sub
                .recv_timeout(Duration::from_secs(10))
                .expect("gaussian output");
            assert_eq!(out.meta().frame_number, n);
            let raw = raw_sub
                .recv_timeout(Duration::from_secs(10))
                .expect("raw frame");
            assert_eq!(raw.meta().frame_number, n);
            done += 1;
        }
    };

    // Warm up: pools fill, channel wakers and thread-locals initialise. The paused frames make
    // every pipeline thread really block on its channel (not just spin), as it does at any
    // real frame rate: a thread's first blocking wait allocates crossbeam's wait context once.
    run(40, Duration::ZERO);
    run(5, Duration::from_millis(5));
    // The same for this thread, on both subscriber channels (nothing is in flight). The wait is
    // long because crossbeam first spins and yields, and only registers a waiter if the
    // deadline has not passed by then, which on a loaded machine takes a while.
    assert!(sub.recv_timeout(Duration::from_millis(250)).is_err());
    assert!(raw_sub.recv_timeout(Duration::from_millis(250)).is_err());
    ALLOCATIONS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    run(200, Duration::ZERO);
    COUNTING.store(false, Ordering::SeqCst);
    let allocations = ALLOCATIONS.load(Ordering::SeqCst);

    drop((sub, raw_sub, producer));
    pipeline.stop();
    assert_eq!(
        allocations, 0,
        "{allocations} allocations for 200 frames in steady state"
    );
}
