use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use zarrs::array::Array;
use zarrs::filesystem::FilesystemStore;

use super::*;
use crate::frame::{FrameMeta, FrameSpec, PixelType};

fn temp_root(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "scopepilot-record-{tag}-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn frame(n: u64, w: u32, h: u32, synthetic: bool) -> Frame {
    let spec = FrameSpec::new(w, h, PixelType::U16);
    let pixels: Vec<u16> = (0..w * h).map(|i| (i as u64 * 7 + n * 13) as u16).collect();
    let mut meta = FrameMeta::arriving_now(n, 1_000_000 + n * 50_000_000);
    meta.exposure_us = 100 + n as u32;
    meta.synthetic = synthetic;
    Frame::standalone(spec, meta, Pixels::U16(pixels))
}

fn config(root: &Path, fpc: u64, compression: Compression) -> RecordingConfig {
    RecordingConfig {
        root: root.to_path_buf(),
        frames_per_chunk: fpc,
        compression,
        checkpoint_ms: 20,
        pixel_size_um: Some(0.65),
        ..RecordingConfig::default()
    }
}

fn read_all<T: zarrs::array::ElementOwned>(
    store: &Arc<FilesystemStore>,
    path: &str,
) -> (Vec<u64>, Vec<T>) {
    let a = Array::open(store.clone(), path).unwrap();
    let shape = a.shape().to_vec();
    let v: Vec<T> = a.retrieve_array_subset(&a.subset_all()).unwrap();
    (shape, v)
}

fn record_and_check(fpc: u64, compression: Compression, frames: u64) {
    let root = temp_root(&format!("rt{fpc}{}", compression.name()));
    let hub = SubscriberHub::new("raw", Arc::new(AtomicU64::new(0)));
    let rec = Recording::start(
        &config(&root, fpc, compression),
        "run1",
        vec![hub.clone()],
        Some(Duration::from_millis(50)),
    )
    .unwrap();
    for n in 0..frames {
        hub.publish(&frame(n, 6, 4, false));
        if n == 2 {
            hub.publish(&frame(1000, 6, 4, true)); // synthetic: never in raw
        }
    }
    let status = rec.stop();
    assert_eq!(status.state, RecordingState::Stopped, "{status:?}");
    assert_eq!(status.frames_written(), frames);
    assert_eq!(status.frames_not_recorded(), 0);
    assert_eq!(status.streams[0].frames_synthetic_skipped, 1);
    assert_eq!(status.bytes_written(), frames * 6 * 4 * 2);

    let store = Arc::new(FilesystemStore::new(root.join("run1.zarr")).unwrap());
    let (shape, pixels) = read_all::<u16>(&store, "/raw/0");
    assert_eq!(shape, vec![frames, 4, 6]);
    for n in 0..frames {
        let f = frame(n, 6, 4, false);
        let Pixels::U16(want) = f.pixels() else {
            unreachable!()
        };
        let at = (n * 24) as usize;
        assert_eq!(&pixels[at..at + 24], want.as_slice(), "frame {n}");
    }
    let (shape, numbers) = read_all::<u64>(&store, "/raw/frame_number");
    assert_eq!(shape, vec![frames]);
    assert_eq!(numbers, (0..frames).collect::<Vec<_>>());
    let (_, ts) = read_all::<u64>(&store, "/raw/camera_timestamp_ns");
    assert_eq!(ts[1] - ts[0], 50_000_000);
    let (_, exposure) = read_all::<u32>(&store, "/raw/exposure_us");
    assert_eq!(exposure[3], 103);
    let (_, synthetic) = read_all::<bool>(&store, "/raw/synthetic");
    assert!(synthetic.iter().all(|s| !s));
    let (_, arrival) = read_all::<u64>(&store, "/raw/arrival_unix_ns");
    assert!(arrival[0] > 1_600_000_000_000_000_000);

    let group: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("run1.zarr/raw/zarr.json")).unwrap())
            .unwrap();
    let ms = &group["attributes"]["ome"]["multiscales"][0];
    assert_eq!(
        ms["datasets"][0]["coordinateTransformations"][0]["scale"],
        serde_json::json!([0.05, 0.65, 0.65])
    );
    assert_eq!(group["attributes"]["scopepilot"]["complete"], true);
    let top: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("run1.zarr/zarr.json")).unwrap()).unwrap();
    assert_eq!(top["attributes"]["scopepilot"]["frames_written"], frames);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn frames_and_metadata_round_trip_one_frame_per_chunk() {
    record_and_check(1, Compression::None, 7);
}

#[test]
fn frames_and_metadata_round_trip_partial_chunks_zstd() {
    record_and_check(3, Compression::Zstd, 7);
}

#[test]
fn metadata_spanning_several_chunks() {
    record_and_check(1, Compression::None, META_CHUNK + 5);
}

#[test]
fn an_existing_path_and_bad_names_are_refused() {
    let root = temp_root("exists");
    let hub = SubscriberHub::new("raw", Arc::new(AtomicU64::new(0)));
    let cfg = config(&root, 1, Compression::None);
    let rec = Recording::start(&cfg, "a", vec![hub.clone()], None).unwrap();
    rec.stop();
    assert!(matches!(
        Recording::start(&cfg, "a", vec![hub.clone()], None),
        Err(RecordError::AlreadyExists(_))
    ));
    for bad in ["", "../x", "a/b", ".hidden", "x y"] {
        assert!(
            matches!(
                Recording::start(&cfg, bad, vec![hub.clone()], None),
                Err(RecordError::InvalidArgument(_))
            ),
            "{bad:?}"
        );
    }
    // A root that is a file cannot hold recordings.
    let file = root.join("file");
    std::fs::write(&file, b"x").unwrap();
    let cfg = RecordingConfig {
        root: file.clone(),
        ..cfg
    };
    assert!(matches!(
        Recording::start(&cfg, "b", vec![hub], None),
        Err(RecordError::NotWritable { .. })
    ));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn an_exhausted_budget_counts_every_frame_not_recorded() {
    let root = temp_root("budget");
    let hub = SubscriberHub::new("raw", Arc::new(AtomicU64::new(0)));
    let cfg = RecordingConfig {
        memory_budget_mib: 1,
        ..config(&root, 1, Compression::None)
    };
    let rec = Recording::start(&cfg, "b", vec![hub.clone()], None).unwrap();
    // 1 MiB frames: one fits the 1 MiB budget at a time; back-to-back publishing outruns the disk.
    let n = 40;
    // Made first, so that publishing is back to back (making them gives the writer slack).
    let frames: Vec<Frame> = (0..n).map(|i| frame(i, 1024, 512, false)).collect();
    for f in &frames {
        hub.publish(f);
    }
    let status = rec.stop();
    assert_eq!(status.frames_written() + status.frames_not_recorded(), n);
    assert!(status.frames_not_recorded() > 0, "{status:?}");
    let store = Arc::new(FilesystemStore::new(root.join("b.zarr")).unwrap());
    let (shape, numbers) = read_all::<u64>(&store, "/raw/frame_number");
    assert_eq!(shape[0], status.frames_written());
    assert!(numbers.windows(2).all(|w| w[0] < w[1]));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn the_writer_runs_at_the_camera_path_priority_when_the_process_may_raise_it() {
    let root = temp_root("nice");
    let hub = SubscriberHub::new("raw", Arc::new(AtomicU64::new(0)));
    let rec = Recording::start(
        &config(&root, 1, Compression::None),
        "nicecheck",
        vec![hub],
        None,
    )
    .unwrap();
    let camera_path = crate::thread_nice::CAMERA_PATH_NICE;
    let want = if crate::thread_nice::may_raise_to(camera_path) {
        camera_path
    } else {
        0
    };
    // The writer sets its priority as it starts ("record-nicecheck", cut to 15 characters).
    let deadline = Instant::now() + Duration::from_secs(5);
    let writer = || crate::thread_nice::of_threads_named("record-nicechec");
    while writer() != [want] && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(writer(), [want]);
    rec.stop();
    std::fs::remove_dir_all(&root).unwrap();
}
