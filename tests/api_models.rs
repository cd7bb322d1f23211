//! The Models service over real gRPC: packages are listed with their state, a running denoise
//! stage switches model between two frames, and bad requests get the right status code while
//! the daemon keeps acquiring.

mod common;

use std::path::PathBuf;

use scopepilot::proto::{FrameFormat, ListModelsRequest, LoadModelRequest, PushFramesRequest};
use tonic::Code;

fn packages() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/bioimageio")
}

fn config() -> String {
    format!(
        r#"
[api]
listen = "127.0.0.1:0"
[models]
search_paths = [{packages:?}]
[[stages]]
name = "denoised"
kind = "denoise"
input = "raw"
params = {{ model = {plain:?} }}
[[stages]]
name = "blurred"
kind = "gaussian"
input = "raw"
"#,
        packages = packages().display().to_string(),
        plain = packages().join("plain-v05").display().to_string(),
    )
}

fn frame(n: u64, h: usize, w: usize) -> (PushFramesRequest, Vec<f32>) {
    let pixels: Vec<u16> = (0..h * w)
        .map(|i| ((i * 7919) % 997 + 100) as u16)
        .collect();
    let input = pixels.iter().map(|&p| p as f32).collect();
    (common::push_u16(n, w, h, &pixels), input)
}

fn f32s(data: &[u8]) -> Vec<f32> {
    data.chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn mean_std(x: &[f32]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let v = x.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n;
    (m, v.sqrt())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_are_listed_and_a_running_stage_switches_model() {
    let server = common::TestServer::start(&config()).await;
    let mut models = server.models().await;
    let mut acq = server.acquisition().await;
    let mut frames = server.frames().await;

    let list = models
        .list_models(ListModelsRequest {})
        .await
        .unwrap()
        .into_inner()
        .models;
    let names: Vec<&str> = list.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["norm-box3-v05", "plain-v05", "zmuv-box3-v04"]);
    assert!(list.iter().all(|m| m.problem.is_empty()), "{list:?}");
    assert_eq!(list[2].format, "bioimage.io 0.4.10");

    acq.start(common::start("push")).await.unwrap();
    let status = common::status(&mut acq).await;
    let model = common::stage(&status, "denoised").model.clone().unwrap();
    assert_eq!(
        (model.name.as_str(), model.provider.as_str()),
        ("plain-v05", "cpu")
    );
    assert_eq!(model.self_test.unwrap().mismatched, 0);
    assert!(common::stage(&status, "blurred").model.is_none());
    let listed = models
        .list_models(ListModelsRequest {})
        .await
        .unwrap()
        .into_inner();
    let plain = listed
        .models
        .iter()
        .find(|m| m.name == "plain-v05")
        .unwrap();
    assert_eq!(plain.used_by_stages, ["denoised"]);
    assert!(plain.loaded.is_some());

    let mut sub = frames
        .subscribe_frames(common::subscription("denoised", FrameFormat::Full, 1, 8))
        .await
        .unwrap()
        .into_inner();
    let (h, w) = (48usize, 64usize);
    let (req, input) = frame(1, h, w);
    frames.push_frames(tokio_stream::iter([req])).await.unwrap();
    let first = f32s(&sub.message().await.unwrap().unwrap().data);

    // Switch to the 0.4 package by name: its output is rescaled to the input's mean and std.
    let loaded = models
        .load_model(LoadModelRequest {
            model: "zmuv-box3-v04".into(),
            stage: "denoised".into(),
            tile: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(loaded.applied_to_running_stage);
    assert_eq!(loaded.model.unwrap().name, "zmuv-box3-v04");
    let (req, _) = frame(2, h, w);
    frames.push_frames(tokio_stream::iter([req])).await.unwrap();
    let second = f32s(&sub.message().await.unwrap().unwrap().data);
    let (m_in, s_in) = mean_std(&input);
    let (m1, s1) = mean_std(&first);
    let (m2, s2) = mean_std(&second);
    assert!(
        (m2 - m_in).abs() < 1e-2 && (s2 - s_in).abs() < 1e-2,
        "{m2} {s2} vs {m_in} {s_in}"
    );
    assert!(
        s1 < 0.8 * s_in,
        "a 3x3 mean alone narrows the spread: {s1} vs {s_in} ({m1})"
    );
    let status = common::wait_for(&mut acq, "the switched model", |s| {
        common::stage(s, "denoised")
            .model
            .as_ref()
            .is_some_and(|m| m.name == "zmuv-box3-v04")
    })
    .await;
    assert_eq!(common::stage(&status, "denoised").errors, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_model_requests_get_clear_errors_and_the_daemon_keeps_running() {
    let server = common::TestServer::start(&config()).await;
    let mut models = server.models().await;
    let mut acq = server.acquisition().await;
    acq.start(common::start("push")).await.unwrap();

    let broken =
        std::env::temp_dir().join(format!("scopepilot-broken-{}.onnx", std::process::id()));
    std::fs::write(&broken, b"definitely not an ONNX protobuf").unwrap();
    let cases = [
        (String::new(), "", Code::InvalidArgument, "model is empty"),
        (
            "no-such-model".into(),
            "",
            Code::NotFound,
            "found: norm-box3-v05, plain-v05, zmuv-box3-v04",
        ),
        (
            broken.display().to_string(),
            "",
            Code::InvalidArgument,
            "not a loadable ONNX model",
        ),
        (
            "plain-v05".into(),
            "blurred",
            Code::InvalidArgument,
            "runs no model",
        ),
        (
            "plain-v05".into(),
            "nope",
            Code::NotFound,
            "no stream named \"nope\"",
        ),
    ];
    for (model, stage, code, want) in cases {
        let e = models
            .load_model(LoadModelRequest {
                model: model.clone(),
                stage: stage.into(),
                tile: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), code, "{model} {stage}: {}", e.message());
        assert!(e.message().contains(want), "{model}: {}", e.message());
    }
    let _ = std::fs::remove_file(broken);
    // Only loading (no stage) checks a model without touching the pipeline.
    let ok = models
        .load_model(LoadModelRequest {
            model: "norm-box3-v05".into(),
            stage: String::new(),
            tile: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!ok.applied_to_running_stage);
    assert_eq!(
        ok.model.unwrap().preprocessing,
        [
            "ensure_dtype(float32)",
            "scale_range(1, 99.8)",
            "clip(0, 1)",
            "ensure_dtype(float32)"
        ]
    );
    let status = common::status(&mut acq).await;
    assert_eq!(
        common::stage(&status, "denoised")
            .model
            .as_ref()
            .unwrap()
            .name,
        "plain-v05"
    );
    server.stop().await;
}
