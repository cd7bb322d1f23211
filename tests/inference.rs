//! ONNX Runtime through `ort` with the library from the project's venv: a real model runs and
//! matches an independent computation; broken models and unavailable GPUs give clear errors.
//! Needs `scripts/setup-venv.sh` (it installs the onnxruntime wheel); `scripts/test.sh` runs it.

use std::path::PathBuf;

use scopepilot::inference::{
    ImageModel, InferenceConfig, InferenceError, ModelPackage, OrtRuntime, ProviderKind,
};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn runtime() -> std::sync::Arc<OrtRuntime> {
    OrtRuntime::get_or_init(&InferenceConfig::default())
        .unwrap_or_else(|e| panic!("{e}\n(run scripts/setup-venv.sh first)"))
}

/// Open the package at `path` and load its ONNX session.
fn load(path: &std::path::Path, config: &InferenceConfig) -> Result<ImageModel, InferenceError> {
    ImageModel::load(&runtime(), &ModelPackage::open(path)?, config)
}

/// 3x3 mean with zero padding, computed directly.
fn box3(img: &[f32], h: usize, w: usize) -> Vec<f32> {
    let at = |y: isize, x: isize| {
        if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
            0.0
        } else {
            img[y as usize * w + x as usize]
        }
    };
    let mut out = vec![0.0; h * w];
    for y in 0..h as isize {
        for x in 0..w as isize {
            let mut s = 0.0;
            for dy in -1..=1 {
                for dx in -1..=1 {
                    s += at(y + dy, x + dx);
                }
            }
            out[y as usize * w + x as usize] = s / 9.0;
        }
    }
    out
}

#[test]
fn a_real_model_runs_on_cpu_and_matches_an_independent_computation() {
    let rt = runtime();
    assert!(rt.library().to_string_lossy().contains("libonnxruntime.so"));
    let mut model = load(&data("box3.onnx"), &InferenceConfig::default()).unwrap();
    assert_eq!(model.provider().used, ProviderKind::Cpu);
    assert_eq!(model.input_name(), "image");
    // Any frame size: the model's spatial axes are dynamic.
    for (h, w) in [(37usize, 53usize), (8, 8)] {
        let img: Vec<f32> = (0..h * w).map(|i| ((i * 7919) % 1000) as f32).collect();
        let mut out = vec![0.0; h * w];
        model.run(&img, h, w, &mut out).unwrap();
        let want = box3(&img, h, w);
        let worst = out
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst < 1e-3, "{h}x{w}: max difference {worst}");
    }
    let mut small = vec![0.0; 3];
    let e = model.run(&[0.0; 4], 2, 2, &mut small).unwrap_err();
    assert!(e.to_string().contains("does not fit"), "{e}");
}

#[test]
fn broken_and_missing_models_are_rejected_with_a_reason() {
    let config = InferenceConfig::default();
    let dir = std::env::temp_dir().join(format!("scopepilot-models-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let corrupt = dir.join("corrupt.onnx");
    let mut bytes = std::fs::read(data("box3.onnx")).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&corrupt, &bytes).unwrap();
    let e = load(&corrupt, &config).unwrap_err().to_string();
    assert!(
        e.contains("corrupt.onnx") && e.contains("not a loadable ONNX model"),
        "{e}"
    );
    let garbage = dir.join("garbage.onnx");
    std::fs::write(&garbage, b"this is not protobuf at all").unwrap();
    assert!(load(&garbage, &config).is_err());
    let e = load(&dir.join("missing.onnx"), &config)
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.onnx") && e.contains("not found"), "{e}");
    // The runtime is still usable afterwards.
    assert!(load(&data("box3.onnx"), &config).is_ok());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_gpu_provider_without_a_gpu_falls_back_to_cpu_unless_required() {
    // The CPU wheel has no CUDA provider and this machine has no GPU.
    let wants_cuda = InferenceConfig {
        provider: ProviderKind::Cuda,
        ..InferenceConfig::default()
    };
    let model = load(&data("box3.onnx"), &wants_cuda).expect("falls back instead of failing");
    let p = model.provider();
    assert_eq!(p.requested, ProviderKind::Cuda);
    if std::env::var_os("SCOPEPILOT_EXPECT_GPU").is_some() {
        assert_eq!(
            p.used,
            ProviderKind::Cuda,
            "a GPU machine with onnxruntime-gpu must use CUDA"
        );
        return;
    }
    assert_eq!(p.used, ProviderKind::Cpu);
    assert!(p.fallback_reason.as_deref().is_some_and(|r| !r.is_empty()));
    let required = InferenceConfig {
        require_gpu: true,
        ..wants_cuda.clone()
    };
    let e = load(&data("box3.onnx"), &required).unwrap_err().to_string();
    assert!(e.contains("require_gpu"), "{e}");
}

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denoise_stage_runs_the_model_tiled_inside_the_daemon() {
    use scopepilot::proto::{FrameFormat, PixelType};

    let config = format!(
        r#"
[api]
listen = "127.0.0.1:0"
[[stages]]
name = "denoised"
kind = "denoise"
input = "raw"
queue = {{ capacity = 4, policy = "block" }}
params = {{ model = {:?} }}
"#,
        data("box3.toml").display().to_string()
    );
    let server = common::TestServer::start(&config).await;
    let mut acq = server.acquisition().await;
    let mut frames = server.frames().await;
    acq.start(common::start("push")).await.unwrap();
    let mut sub = frames
        .subscribe_frames(common::subscription("denoised", FrameFormat::Full, 1, 8))
        .await
        .unwrap()
        .into_inner();
    // 40 x 50: several 16-pixel tiles, partial ones at the right and bottom.
    let (h, w) = (40usize, 50usize);
    let pixels: Vec<u16> = (0..h * w)
        .map(|i| ((i * 7919) % 4000 + 33000) as u16)
        .collect();
    let req = common::push_u16(1, w, h, &pixels);
    frames.push_frames(tokio_stream::iter([req])).await.unwrap();
    let got = sub.message().await.unwrap().unwrap();
    assert_eq!(
        (got.width, got.height, got.pixel_type),
        (50, 40, PixelType::F32 as i32)
    );
    let out: Vec<f32> = got
        .data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let want = box3(&pixels.iter().map(|&p| p as f32).collect::<Vec<_>>(), h, w);
    // Tiles with a 1-pixel halo reproduce the direct filter everywhere (no size multiple, so
    // no reflection padding; the model's own zero padding applies at the frame border).
    for y in 0..h {
        for x in 0..w {
            let (a, b) = (out[y * w + x], want[y * w + x]);
            assert!((a - b).abs() < 0.05, "({y}, {x}): {a} vs {b}");
        }
    }
    let status = common::wait_for(&mut acq, "the denoised frame", |s| {
        common::stage(s, "denoised").frames_out == 1
    })
    .await;
    assert_eq!(common::stage(&status, "denoised").kind, "denoise");
    server.stop().await;
}

#[test]
fn a_config_with_a_missing_model_names_the_stage_and_key() {
    let text = "[[stages]]\nname = \"denoised\"\nkind = \"denoise\"\nparams = { model = \"/nonexistent/model.toml\" }\n";
    let e = scopepilot::config::Config::from_toml(text)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("stages[0] (denoised).params.model") && e.contains("/nonexistent/model.toml"),
        "{e}"
    );
}

/// Both shipped denoisers load (their bioimage.io test tensors pass the self-test) and remove
/// noise on a simulated frame with known truth, better than the best Gaussian blur.
#[test]
fn the_shipped_denoisers_reduce_noise_on_a_simulated_frame_with_known_truth() {
    for name in ["denoise-fast-nuclei", "denoise-care-nuclei"] {
        shipped_denoiser_beats_gaussian(name);
    }
}

fn shipped_denoiser_beats_gaussian(name: &str) {
    use scopepilot::inference::LoadedModel;
    use scopepilot::source::simulated::random::{NormalTable, Rng};
    use scopepilot::source::simulated::{Scene, SimulatedConfig};

    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(name);
    // Tiles of 64 pixels, so tiling is part of what is checked.
    let mut model = LoadedModel::open(&dir, 64, &InferenceConfig::default()).unwrap();
    let summary = model.summary();
    assert!(summary.format.starts_with("bioimage.io 0.5"), "{summary:?}");
    assert!(summary.self_test.is_some(), "{name} ships test tensors");
    let cfg = SimulatedConfig::default();
    let (h, w) = (128usize, 128usize);
    let scene = Scene::new(w, h, cfg.scene, 3);
    let mut electrons = vec![0.0f32; h * w];
    scene.render(&mut electrons);
    let clean: Vec<f32> = electrons
        .iter()
        .map(|&e| cfg.camera.expected_adu(e))
        .collect();
    let mut counts = vec![0u16; h * w];
    cfg.camera.expose(
        &electrons,
        &NormalTable::new(),
        &mut Rng::new(5),
        &mut counts,
    );
    let noisy: Vec<f32> = counts.iter().map(|&c| c as f32).collect();
    let mut denoised = vec![0.0f32; h * w];
    model.process(&noisy, h, w, &mut denoised).unwrap();
    let mse = |a: &[f32]| {
        a.iter()
            .zip(&clean)
            .map(|(x, y)| ((x - y) as f64).powi(2))
            .sum::<f64>()
            / (h * w) as f64
    };
    let (before, after) = (mse(&noisy), mse(&denoised));
    // The classical baseline at its best sigma on this very frame, for the record.
    let pixels = scopepilot::frame::Pixels::F32(noisy.clone());
    let best_gaussian = [0.5f32, 0.75, 1.0, 1.5, 2.0]
        .iter()
        .map(|&sigma| {
            let mut out = vec![0.0f32; h * w];
            scopepilot::pipeline::gaussian::GaussianBlur::new(sigma).apply(&pixels, w, &mut out);
            mse(&out)
        })
        .fold(f64::MAX, f64::min);
    eprintln!(
        "{name}: MSE vs truth: noisy {before:.1}, best gaussian {best_gaussian:.1}, model {after:.1}"
    );
    assert!(
        after < 0.9 * before,
        "{name}: MSE vs truth: noisy {before:.1}, model {after:.1}"
    );
    assert!(
        after < 0.9 * best_gaussian,
        "{name}: MSE vs truth: gaussian {best_gaussian:.1}, model {after:.1}"
    );
}
