//! The `interpolate` stage in the running daemon, over real gRPC: a learned interpolator after
//! a denoiser streams twice the acquired rate with the generated frames flagged synthetic; gaps
//! are skipped and counted; models with the wrong inputs are refused with a clear status.

mod common;

use std::path::PathBuf;

use scopepilot::proto::{FrameFormat, LoadModelRequest, PixelType};
use tonic::Code;

const W: usize = 128;
const H: usize = 128;

fn model(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(name)
        .display()
        .to_string()
}

fn config(source: &str) -> String {
    format!(
        r#"
[api]
listen = "127.0.0.1:0"
[acquisition]
autostart = false
ring_capacity = 64
[source]
kind = "{source}"
[source.simulated]
width = {W}
height = {H}
frame_rate_hz = 20.0
[[stages]]
name = "denoised"
kind = "denoise"
input = "raw"
queue = {{ capacity = 64, policy = "block" }}
params = {{ model = {denoiser:?} }}
[[stages]]
name = "interpolated"
kind = "interpolate"
input = "denoised"
queue = {{ capacity = 64, policy = "block" }}
params = {{ model = {interpolator:?}, factor = 2 }}
[[stages]]
name = "blended"
kind = "interpolate"
input = "raw"
queue = {{ capacity = 64, policy = "block" }}
params = {{ method = "linear", factor = 2 }}
"#,
        denoiser = model("denoise-fast-nuclei"),
        interpolator = model("interpolate-fast"),
    )
}

/// A bright nucleus moving 6 px per frame over the camera offset, with a little texture.
fn moving_blob(n: u64) -> Vec<u16> {
    let (cx, cy) = (30.0 + 6.0 * n as f64, 64.0);
    (0..H * W)
        .map(|i| {
            let (x, y) = ((i % W) as f64, (i / W) as f64);
            let r2 = (x - cx).powi(2) + (y - cy).powi(2);
            let texture = ((i * 7919) % 13) as f64;
            (1000.0 + 3000.0 * (-r2 / 120.0).exp() + texture) as u16
        })
        .collect()
}

fn f32s(data: &[u8]) -> Vec<f32> {
    data.chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// Column of the intensity-weighted centre of the blob (background removed).
fn centre_x(pixels: &[f32]) -> f64 {
    let (mut sum, mut weighted) = (0.0, 0.0);
    for (i, &p) in pixels.iter().enumerate() {
        let v = (p as f64 - 1100.0).max(0.0);
        sum += v;
        weighted += v * (i % W) as f64;
    }
    weighted / sum
}

type Frames = scopepilot::proto::frames_client::FramesClient<tonic::transport::Channel>;
type Acquisition =
    scopepilot::proto::acquisition_client::AcquisitionClient<tonic::transport::Channel>;

/// A server on `config(source)`, acquiring, with a subscription to its `interpolated` stream.
async fn acquiring_and_subscribed(
    source: &str,
) -> (
    common::TestServer,
    Acquisition,
    Frames,
    tonic::Streaming<scopepilot::proto::Frame>,
) {
    let server = common::TestServer::start(&config(source)).await;
    let mut acq = server.acquisition().await;
    let mut frames = server.frames().await;
    acq.start(common::start(source)).await.unwrap();
    let sub = frames
        .subscribe_frames(common::subscription(
            "interpolated",
            FrameFormat::Full,
            1,
            64,
        ))
        .await
        .unwrap()
        .into_inner();
    (server, acq, frames, sub)
}

/// Push the moving blob as frames 0, 1, 2, 4, 5 (frame 3 lost upstream); frames accepted.
async fn push_with_a_gap(frames: &mut Frames) -> u64 {
    let reqs: Vec<_> = [0u64, 1, 2, 4, 5]
        .iter()
        .map(|&n| common::push_u16(n, W, H, &moving_blob(n)))
        .collect();
    frames
        .push_frames(tokio_stream::iter(reqs))
        .await
        .unwrap()
        .into_inner()
        .frames_accepted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learned_interpolation_after_denoise_doubles_the_stream_and_flags_generated_frames() {
    let (server, mut acq, mut frames, mut sub) = acquiring_and_subscribed("push").await;
    // Frame 3 is lost before it reaches the daemon: no frame may be made across that gap.
    assert_eq!(push_with_a_gap(&mut frames).await, 5);

    let mut got = Vec::new();
    for _ in 0..8 {
        got.push(sub.message().await.unwrap().unwrap());
    }
    let order: Vec<(u64, bool)> = got.iter().map(|f| (f.frame_number, f.synthetic)).collect();
    assert_eq!(
        order,
        [
            (0, false),
            (0, true),
            (1, false),
            (1, true),
            (2, false),
            (4, false),
            (4, true),
            (5, false)
        ]
    );
    assert!(
        got.iter()
            .all(|f| f.pixel_type == PixelType::F32 as i32 && f.data.len() == W * H * 4)
    );
    // Generated frames sit halfway in time, the blob (roughly) halfway in space, and they are
    // new images, not copies of a neighbour.
    for i in [1, 3, 6] {
        let (before, mid, after) = (&got[i - 1], &got[i], &got[i + 1]);
        assert_eq!(
            mid.timestamp_ns,
            (before.timestamp_ns + after.timestamp_ns) / 2
        );
        let (a, m, b) = (
            centre_x(&f32s(&before.data)),
            centre_x(&f32s(&mid.data)),
            centre_x(&f32s(&after.data)),
        );
        assert!(
            (m - (a + b) / 2.0).abs() < 1.5,
            "frame {i}: blob centre {m:.2} not between {a:.2} and {b:.2}"
        );
        assert_ne!(mid.data, before.data);
        assert_ne!(mid.data, after.data);
    }

    let status = common::wait_for(&mut acq, "both interpolate stages done", |s| {
        common::stage(s, "interpolated").frames_in == 5
            && common::stage(s, "blended").frames_in == 5
    })
    .await;
    for name in ["interpolated", "blended"] {
        let st = common::stage(&status, name);
        assert_eq!(st.kind, "interpolate");
        assert_eq!(
            (
                st.frames_out,
                st.frames_synthetic,
                st.gaps_skipped,
                st.errors
            ),
            (8, 3, 1, 0),
            "{name}: {st:?}"
        );
    }
    let learned = common::stage(&status, "interpolated")
        .model
        .clone()
        .unwrap();
    assert_eq!(learned.name, "interpolate-fast");
    assert!(learned.self_test.is_some(), "{learned:?}");
    assert!(common::stage(&status, "blended").model.is_none());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_camera_streams_at_twice_its_rate_with_exact_accounting() {
    let (server, mut acq, _frames, mut sub) = acquiring_and_subscribed("simulated").await;
    let mut flags = Vec::new();
    for _ in 0..12 {
        flags.push(sub.message().await.unwrap().unwrap().synthetic);
    }
    // Once two measured frames have passed, measured and generated frames alternate.
    let first = flags.iter().position(|&s| s).expect("a synthetic frame");
    for (i, &s) in flags[first..].iter().enumerate() {
        assert_eq!(
            s,
            i % 2 == 0,
            "frame {i} after the first synthetic: {flags:?}"
        );
    }
    acq.stop(scopepilot::proto::StopRequest {}).await.unwrap();
    let status = common::status(&mut acq).await;
    let st = common::stage(&status, "interpolated");
    let raw_in = common::stage(&status, "denoised").frames_in;
    assert!(st.frames_in >= 7 && st.frames_in <= raw_in, "{st:?}");
    // Every interval between consecutive measured frames got exactly one generated frame;
    // every other interval is a counted gap.
    assert_eq!(
        st.frames_synthetic + st.gaps_skipped,
        st.frames_in - 1,
        "{st:?}"
    );
    assert_eq!(st.frames_out, st.frames_in + st.frames_synthetic, "{st:?}");
    assert_eq!(st.errors, 0);
    server.stop().await;
}

/// `LoadModel` of the shipped package `name` into `stage`.
async fn load(
    models: &mut scopepilot::proto::models_client::ModelsClient<tonic::transport::Channel>,
    name: &str,
    stage: &str,
) -> Result<tonic::Response<scopepilot::proto::LoadModelResponse>, tonic::Status> {
    models
        .load_model(LoadModelRequest {
            model: model(name),
            stage: stage.into(),
            tile: 0,
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_with_the_wrong_inputs_are_refused_and_the_stages_keep_theirs() {
    let server = common::TestServer::start(&config("push")).await;
    let mut models = server.models().await;
    let mut acq = server.acquisition().await;
    acq.start(common::start("push")).await.unwrap();

    let denoiser_into_interpolator = load(&mut models, "denoise-fast-nuclei", "interpolated")
        .await
        .unwrap_err();
    assert_eq!(denoiser_into_interpolator.code(), Code::InvalidArgument);
    assert!(
        denoiser_into_interpolator
            .message()
            .contains("input channel"),
        "{denoiser_into_interpolator:?}"
    );
    let interpolator_into_denoiser = load(&mut models, "interpolate-fast", "denoised")
        .await
        .unwrap_err();
    assert_eq!(interpolator_into_denoiser.code(), Code::InvalidArgument);
    assert!(
        interpolator_into_denoiser.message().contains("frame0"),
        "{interpolator_into_denoiser:?}"
    );
    let into_linear = load(&mut models, "interpolate-fast", "blended")
        .await
        .unwrap_err();
    assert_eq!(into_linear.code(), Code::InvalidArgument);
    assert!(
        into_linear.message().contains("runs no model"),
        "{into_linear:?}"
    );
    // The right kind of model is accepted by the interpolate stage.
    let ok = load(&mut models, "interpolate-fast", "interpolated")
        .await
        .unwrap()
        .into_inner();
    assert!(ok.applied_to_running_stage, "{ok:?}");

    let status = common::status(&mut acq).await;
    assert_eq!(
        common::stage(&status, "denoised")
            .model
            .as_ref()
            .unwrap()
            .name,
        "denoise-fast-nuclei"
    );
    server.stop().await;
}

#[test]
fn a_config_pairing_interpolate_with_a_denoiser_names_the_stage_and_the_problem() {
    let text = config("push").replace(&model("interpolate-fast"), &model("denoise-fast-nuclei"));
    let config = scopepilot::config::Config::from_toml(&text).expect("parses");
    let stages = &config.stages;
    let err = stages[1]
        .build(&scopepilot::pipeline::StageContext {
            inference: config.inference.clone(),
            ..Default::default()
        })
        .err()
        .expect("refused");
    let msg = err.to_string();
    assert!(msg.starts_with("params.model"), "{msg}");
    assert!(msg.contains("stage runs models of 3"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_keeps_generated_frames_flagged_and_out_of_raw() {
    let root = common::temp_dir("rec-interp");
    let text = format!(
        "{}\n[recording]\nroot = {:?}\ncheckpoint_ms = 20\n",
        config("push"),
        root.display().to_string()
    );
    let server = common::TestServer::start(&text).await;
    let mut acq = server.acquisition().await;
    let mut frames = server.frames().await;
    let mut rec = server.recording().await;
    acq.start(common::start("push")).await.unwrap();
    rec.start_recording(scopepilot::proto::StartRecordingRequest {
        name: "interp".into(),
        streams: vec!["raw".into(), "blended".into()],
    })
    .await
    .unwrap();
    push_with_a_gap(&mut frames).await;
    common::wait_for(&mut acq, "blended done", |s| {
        common::stage(s, "blended").frames_out == 8
    })
    .await;
    let fin = rec
        .stop_recording(scopepilot::proto::StopRecordingRequest {})
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(fin.frames_not_recorded, 0, "{fin:?}");

    let store = std::sync::Arc::new(
        zarrs::filesystem::FilesystemStore::new(root.join("interp.zarr")).unwrap(),
    );
    let column = |stream: &str, name: &str| -> Vec<u64> {
        let a = zarrs::array::Array::open(store.clone(), &format!("/{stream}/{name}")).unwrap();
        if name == "synthetic" {
            let v: Vec<bool> = a.retrieve_array_subset(&a.subset_all()).unwrap();
            v.into_iter().map(u64::from).collect()
        } else {
            a.retrieve_array_subset(&a.subset_all()).unwrap()
        }
    };
    assert_eq!(column("raw", "frame_number"), [0, 1, 2, 4, 5]);
    assert_eq!(column("raw", "synthetic"), [0, 0, 0, 0, 0]);
    assert_eq!(column("blended", "frame_number"), [0, 0, 1, 1, 2, 4, 4, 5]);
    assert_eq!(column("blended", "synthetic"), [0, 1, 0, 1, 0, 0, 1, 0]);
    server.stop().await;
    std::fs::remove_dir_all(&root).unwrap();
}
