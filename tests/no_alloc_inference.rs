//! "Input and output buffers reused across frames": with a counting global allocator, running
//! a loaded model (preprocessing, tiled ONNX Runtime inference into preallocated outputs,
//! postprocessing) on steady-state frames allocates nothing on the Rust side. ONNX Runtime's
//! own arena is C++ and reuses its memory across runs.

#[path = "alloc_counter/mod.rs"]
mod alloc_counter;

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use alloc_counter::{ALLOCATIONS, COUNTING};
use scopepilot::inference::{InferenceConfig, LoadedModel};

#[test]
fn steady_state_inference_allocates_nothing() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/bioimageio/norm-box3-v05");
    // Tiles of 32 on an 80 x 112 frame: interior and edge tiles of several sizes.
    let mut model = LoadedModel::open(&dir, 32, &InferenceConfig::default()).unwrap();
    let (h, w) = (80usize, 112usize);
    let frame: Vec<f32> = (0..h * w).map(|i| ((i * 7919) % 4000) as f32).collect();
    let mut out = vec![0.0f32; h * w];
    for _ in 0..3 {
        model.process(&frame, h, w, &mut out).unwrap();
    }
    COUNTING.store(true, Ordering::SeqCst);
    for _ in 0..50 {
        model.process(&frame, h, w, &mut out).unwrap();
    }
    COUNTING.store(false, Ordering::SeqCst);
    let n = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(n, 0, "{n} allocations in 50 frames");
}
