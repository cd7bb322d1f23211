//! Sustained write throughput of the `record` sink against the raw speed of the same disk,
//! measured in the same run (not a criterion bench: each measurement writes gigabytes).
//!
//! Each round runs, one after the other, in a directory on the disk under test:
//! - `dd`: `dd if=/dev/zero of=<dir>/dd.bin bs=<frame bytes> count=<N> conv=fdatasync`, the
//!   disk's raw sequential write speed with the data on the disk at the end;
//! - `record none`: a recording of N frames (2048x2048 u16 simulated camera frames, realistic
//!   noise) through [`Recording`] exactly as the daemon runs it (tap -> memory-budgeted queue ->
//!   writer thread -> OME-Zarr), uncompressed, one frame per chunk, then `sync -f` so its data
//!   is on the disk too;
//! - `record zstd 1` and `record zstd 3`: the same with zstd at levels 1 and 3 (the
//!   default), one compressing thread (the writer).
//!
//! The producer offers frames as fast as the recording's memory budget admits (it waits while
//! the queue is full, so no frame is refused: the check below fails if one is), so the time is
//! the writer's. Rounds alternate the three and the medians are reported, with the ratio
//! record/dd. Usage:
//!
//! ```text
//! cargo bench --bench record                      # 3 rounds of 200 frames (1.6 GiB each)
//! SCOPEPILOT_RECORD_BENCH_DIR=/mnt/disk SCOPEPILOT_RECORD_BENCH_FRAMES=400 \
//!     SCOPEPILOT_RECORD_BENCH_ROUNDS=5 cargo bench --bench record
//! ```
//!
//! Without `--bench` (as `cargo test --benches` runs it) it makes one small round as a smoke test.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use scopepilot::frame::{Frame, FramePool};
use scopepilot::sink::record::{Compression, Recording, RecordingConfig};
use scopepilot::sink::subscribers::SubscriberHub;
use scopepilot::source::simulated::{SimulatedConfig, SimulatedSource};
use scopepilot::source::{Capture, FrameInterval, FrameSource};
use support::env_or;

/// Distinct camera frames cycled through by the producer.
const DISTINCT_FRAMES: usize = 8;

/// Simulated camera frames of `side` x `side` (noise included, so compression is realistic).
fn camera_frames(side: u32) -> Vec<Frame> {
    let cfg = SimulatedConfig {
        width: side,
        height: side,
        ..SimulatedConfig::default()
    };
    let mut source = SimulatedSource::new(cfg, FrameInterval::new(Duration::from_micros(100)))
        .expect("valid simulator config");
    let mut pool = FramePool::new(source.spec(), DISTINCT_FRAMES + 1, DISTINCT_FRAMES + 1);
    let mut frames = Vec::new();
    while frames.len() < DISTINCT_FRAMES {
        if let Capture::Frame(f) = source.capture(&mut pool).expect("capture") {
            frames.push(f);
        }
    }
    frames
}

/// Flush the file system holding `dir` to the disk (coreutils `sync -f`).
fn sync_fs(dir: &Path) {
    let ok = Command::new("sync")
        .arg("-f")
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "sync -f {} failed", dir.display());
}

/// Seconds for `dd` to write `count` blocks of `block` bytes with fdatasync.
fn dd_seconds(dir: &Path, block: usize, count: usize) -> f64 {
    let file = dir.join("dd.bin");
    let t0 = Instant::now();
    let out = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", file.display()))
        .arg(format!("bs={block}"))
        .arg(format!("count={count}"))
        .arg("conv=fdatasync")
        .output()
        .expect("run dd");
    let secs = t0.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "dd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(&file).expect("remove dd.bin");
    secs
}

/// Seconds to record `count` frames (cycling `frames`) and have them on the disk; the
/// compressed size on disk in bytes.
fn record_seconds(
    dir: &Path,
    frames: &[Frame],
    count: usize,
    compression: Compression,
    zstd_level: i32,
) -> (f64, u64) {
    let config = RecordingConfig {
        root: dir.to_path_buf(),
        compression,
        zstd_level,
        ..RecordingConfig::default()
    };
    let budget = config.memory_budget_mib << 20;
    let frame_bytes = frames[0].spec().byte_len() as u64;
    let hub = SubscriberHub::new("raw", Arc::new(AtomicU64::new(0)));
    let t0 = Instant::now();
    let rec = Recording::start(
        &config,
        "bench",
        vec![hub.clone()],
        Some(Duration::from_millis(10)),
    )
    .expect("start recording");
    for i in 0..count {
        while rec.status().queue_bytes + frame_bytes > budget {
            std::thread::sleep(Duration::from_micros(200));
        }
        hub.publish(&frames[i % frames.len()]);
    }
    let status = rec.stop();
    sync_fs(dir);
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(status.error, None, "recording failed");
    assert_eq!(status.frames_written(), count as u64, "frames written");
    assert_eq!(status.frames_not_recorded(), 0, "frames not recorded");
    let store = dir.join("bench.zarr");
    let on_disk = du_bytes(&store);
    std::fs::remove_dir_all(&store).expect("remove the recording");
    (secs, on_disk)
}

/// Bytes of the files under `dir`.
fn du_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let meta = entry.metadata().expect("metadata");
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (side, count, rounds) = if bench {
        (
            env_or("SCOPEPILOT_RECORD_BENCH_SIDE", 2048u32),
            env_or("SCOPEPILOT_RECORD_BENCH_FRAMES", 200usize),
            env_or("SCOPEPILOT_RECORD_BENCH_ROUNDS", 3usize),
        )
    } else {
        (256, 16, 1)
    };
    let dir: PathBuf = std::env::var_os("SCOPEPILOT_RECORD_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/record-bench"));
    std::fs::create_dir_all(&dir).expect("create the bench directory");
    let frames = camera_frames(side);
    let frame_bytes = frames[0].spec().byte_len();
    let mib = (frame_bytes * count) as f64 / (1 << 20) as f64;
    println!(
        "record bench: {count} frames of {side}x{side} u16 ({mib:.0} MiB) per run, {rounds} round(s), in {}",
        dir.display()
    );
    const ZSTD_LEVELS: [i32; 2] = [1, 3];
    let (mut dd, mut none) = (vec![], vec![]);
    let mut zstd = [vec![], vec![]];
    let mut zstd_size = [0u64; 2];
    for round in 1..=rounds {
        let d = mib / dd_seconds(&dir, frame_bytes, count);
        let n = mib / record_seconds(&dir, &frames, count, Compression::None, 0).0;
        print!("round {round}: dd {d:.0} MiB/s, record none {n:.0} MiB/s");
        dd.push(d);
        none.push(n);
        for (i, level) in ZSTD_LEVELS.into_iter().enumerate() {
            let (secs, size) = record_seconds(&dir, &frames, count, Compression::Zstd, level);
            print!(", record zstd {level} {:.0} MiB/s", mib / secs);
            zstd[i].push(mib / secs);
            zstd_size[i] = size;
        }
        println!();
    }
    let (dd, none) = (median(dd), median(none));
    println!("medians (MiB/s of pixel data, data on the disk at the end):");
    println!("  dd (fdatasync)      {dd:8.0}");
    println!("  record, none        {none:8.0}   {:.2} of dd", none / dd);
    for (i, level) in ZSTD_LEVELS.into_iter().enumerate() {
        let z = median(zstd[i].clone());
        println!(
            "  record, zstd {level}      {z:8.0}   {:.2} of dd; compression ratio {:.2}, {:.0} frames/s",
            z / dd,
            (frame_bytes * count) as f64 / zstd_size[i] as f64,
            z * (1 << 20) as f64 / frame_bytes as f64
        );
    }
}
