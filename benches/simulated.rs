//! Cost of producing one simulated frame, to check whether the simulated source can keep up
//! with 100 fps (10 ms per frame) on this machine.
//!
//! - `simulated_capture/<size>/<n>_nuclei`: `SimulatedSource::capture` until it returns a
//!   frame, with the shortest frame interval (100 us) so the pacer never sleeps once frames take
//!   longer than that: scene step + scene render + camera noise + pool acquire, per frame.
//!   `40_nuclei` is the default scene as it starts; `90_nuclei` starts with `max_nuclei` (90),
//!   the state a default scene reaches after roughly one to two minutes of acquisition as its
//!   nuclei divide (render cost grows with the number of nuclei, not with the frame size).
//! - `simulated_parts/{scene_step,scene_render,camera_expose}/<size>[/<state>]`: the parts
//!   separately, to see which one dominates. `scene_render` is measured on a fresh default
//!   scene (`t0`) and on one aged by 120 s of 10 ms steps (`aged_120s`, as at 100 fps).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use scopepilot::frame::FramePool;
use scopepilot::source::simulated::random::{NormalTable, Rng};
use scopepilot::source::simulated::{
    CameraModel, Scene, SceneParams, SimulatedConfig, SimulatedSource,
};
use scopepilot::source::{Capture, FrameInterval, FrameSource};

const SIDES: [usize; 2] = [512, 2048];

fn label(side: usize) -> String {
    format!("{side}x{side}")
}

fn capture(c: &mut Criterion) {
    let mut group = c.benchmark_group("simulated_capture");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let cases = [(512usize, 40usize), (512, 90), (2048, 40)];
    for (side, nuclei) in cases {
        let mut cfg = SimulatedConfig {
            width: side as u32,
            height: side as u32,
            ..SimulatedConfig::default()
        };
        cfg.scene.initial_nuclei = nuclei;
        let id = format!("{}/{nuclei}_nuclei", label(side));
        let mut source = SimulatedSource::new(cfg, FrameInterval::new(Duration::from_micros(100)))
            .expect("valid config");
        let mut pool = FramePool::new(source.spec(), 2, 2);
        let mut idle = 0u64;
        group.bench_function(BenchmarkId::from_parameter(&id), |b| {
            b.iter(|| {
                loop {
                    match source.capture(&mut pool).expect("capture") {
                        Capture::Frame(f) => break black_box(f),
                        Capture::Idle => idle += 1,
                        other => panic!("unexpected {other:?}"),
                    }
                }
            })
        });
        // Frames take far longer than 100 us, so the pacer should (almost) never be idle.
        eprintln!(
            "simulated_capture/{id}: {idle} idle polls, {} frames late on the 100 us schedule, \
             {} nuclei at the end",
            source.late_frames(),
            source.scene().nucleus_count()
        );
    }
    group.finish();
}

fn parts(c: &mut Criterion) {
    let mut group = c.benchmark_group("simulated_parts");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for side in SIDES {
        let n = side * side;
        group.throughput(Throughput::Elements(n as u64));
        let params = SceneParams::default();
        let fresh = Scene::new(side, side, params, 1);
        // 120 s of acquisition at 100 fps: nuclei divide up to `max_nuclei`.
        let mut aged = fresh.clone();
        let mut growth = Vec::new();
        for f in 1..=12_000u64 {
            aged.step(0.01, f);
            if f % 1500 == 0 {
                growth.push(format!("{}s:{}", f / 100, aged.nucleus_count()));
            }
        }
        eprintln!(
            "simulated_parts/{}: nuclei after N s at 100 fps: {}",
            label(side),
            growth.join(" ")
        );
        let mut stepped = fresh.clone();
        let mut frame_number = 1u64;
        group.bench_function(BenchmarkId::new("scene_step", label(side)), |b| {
            b.iter(|| {
                stepped.step(0.01, frame_number);
                frame_number += 1;
            })
        });
        let mut expected = vec![0.0f32; n];
        for (state, scene) in [("t0", &fresh), ("aged_120s", &aged)] {
            eprintln!(
                "simulated_parts/scene_render/{}/{state}: {} nuclei",
                label(side),
                scene.nucleus_count()
            );
            let id = BenchmarkId::new("scene_render", format!("{}/{state}", label(side)));
            group.bench_function(id, |b| {
                b.iter(|| {
                    scene.render(&mut expected);
                    black_box(expected[n / 2])
                })
            });
        }
        fresh.render(&mut expected);
        let camera = CameraModel::default();
        let normals = NormalTable::new();
        let mut out = vec![0u16; n];
        let mut seed = 0u64;
        group.bench_function(BenchmarkId::new("camera_expose", label(side)), |b| {
            b.iter(|| {
                seed += 1;
                let mut rng = Rng::new(seed);
                camera.expose(&expected, &normals, &mut rng, &mut out);
                black_box(out[n / 2])
            })
        });
    }
    group.finish();
}

criterion_group!(benches, capture, parts);
criterion_main!(benches);
