//! Helpers shared by the benches (each bench includes this module with `mod support;`).

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use scopepilot::inference::{InferenceConfig, ModelPackage, OrtRuntime};
use scopepilot::source::simulated::random::{NormalTable, Rng};
use scopepilot::source::simulated::{Scene, SimulatedConfig};

/// `key` from the environment, parsed, or `default`.
pub fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `count` consecutive frames (0.5 s apart) of the simulated microscope, a field full of
/// nuclei, as camera counts.
pub fn simulated_frames(side: usize, count: usize) -> Vec<Vec<u16>> {
    let cfg = SimulatedConfig::default();
    let mut scene = Scene::new(side, side, cfg.scene, cfg.seed);
    let normals = NormalTable::new();
    let mut rng = Rng::new(cfg.seed);
    let mut expected = vec![0.0f32; side * side];
    // Let the field fill up first.
    for n in 1..=200 {
        scene.step(0.5, n);
    }
    (0..count)
        .map(|n| {
            scene.step(0.5, 200 + n as u64);
            scene.render(&mut expected);
            let mut counts = vec![0u16; side * side];
            cfg.camera
                .expose(&expected, &normals, &mut rng, &mut counts);
            counts
        })
        .collect()
}

/// The `q` quantile of `sorted` durations, in milliseconds.
pub fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// A plain ONNX Runtime session on the package's model, as any program would make it (all
/// graph optimisations, `threads` intra-op threads): the baseline of the bare loops.
pub fn bare_session(model: &Path, threads: usize) -> ort::session::Session {
    let config = InferenceConfig::default();
    let runtime = OrtRuntime::get_or_init(&config).unwrap_or_else(|e| panic!("{e}"));
    let package = ModelPackage::open(model).unwrap_or_else(|e| panic!("{e}"));
    (|| -> Result<ort::session::Session, String> {
        let e = |e: &dyn std::fmt::Display| e.to_string();
        ort::session::Session::builder(runtime.environment())
            .map_err(|x| e(&x))?
            .with_intra_threads(threads)
            .map_err(|x| e(&x))?
            .with_optimization_level(ort::session::builder::GraphOptimizationLevel::All)
            .map_err(|x| e(&x))?
            .commit_from_file(&package.onnx)
            .map_err(|x| e(&x))
    })()
    .unwrap_or_else(|e| panic!("{e}"))
}
