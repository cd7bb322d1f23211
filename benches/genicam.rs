//! Throughput of the `genicam` source: frames/s and MiB/s from Aravis's fake GigE Vision
//! camera into the pipeline, beside Aravis's own `arv-camera-test-0.8` on the same settings,
//! in the same run. Prints a Markdown table.
//!
//! Needs the fake camera on 127.0.0.1, so it runs inside a private network namespace:
//! `scripts/test-genicam.sh --bench`. Settings:
//! `GENICAM_BENCH_SECONDS` (default 5) per measurement, `GENICAM_BENCH_SIZES` (default
//! `512,1024,2048`), `GENICAM_BENCH_ROUNDS` (default 2) alternating rounds per size, frame
//! rate requested 1000 fps (the fake camera's maximum) so both sides
//! run as fast as the fake camera can generate frames.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use scopepilot::config::Config;
use scopepilot::daemon::Daemon;

struct Fake(Child);

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_fake() -> Fake {
    let child = Command::new("arv-fake-gv-camera-0.8")
        .args(["-i", "127.0.0.1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("arv-fake-gv-camera-0.8 (aravis-tools) starts");
    std::thread::sleep(Duration::from_millis(500));
    Fake(child)
}

/// Frames/s and MiB/s measured by `arv-camera-test-0.8` (from its final stream statistics).
fn aravis_tool(size: u32, seconds: u64) -> (f64, f64, u64, u64) {
    let out = Command::new("arv-camera-test-0.8")
        .args([
            "-n",
            "127.0.0.1",
            "-w",
            &size.to_string(),
            "-h",
            &size.to_string(),
            "-f",
            "1000",
            "-e",
            "1000",
            "--features",
            "PixelFormat=Mono16",
            &format!("--duration={seconds}"),
        ])
        .output()
        .expect("arv-camera-test-0.8 runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let stat = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == name).then(|| v.trim().parse().ok()).flatten()
            })
            .unwrap_or_else(|| panic!("arv-camera-test-0.8 printed no {name}:\n{text}"))
    };
    let completed = stat("n_completed_buffers");
    let lost = stat("n_failures") + stat("n_underruns") + stat("n_missing_frames");
    let bytes = completed as f64 * (size as f64 * size as f64 * 2.0);
    let s = seconds as f64;
    (
        completed as f64 / s,
        bytes / s / (1 << 20) as f64,
        completed,
        lost,
    )
}

/// Frames/s and MiB/s of frames that reached the pipeline (the ingest thread took them off the
/// ring), through the daemon with a genicam source and one passthrough stage.
fn scopepilot(size: u32, seconds: u64) -> (f64, f64, u64, u64) {
    let toml = format!(
        r#"
[api]
listen = "127.0.0.1:0"
[acquisition]
ring_capacity = 64
[source]
kind = "genicam"
[source.genicam]
address = "127.0.0.1"
pixel_format = "mono16"
exposure_us = 1000
frame_rate_hz = 1000
roi = [0, 0, {size}, {size}]
buffers = 16
[[stages]]
name = "copy"
kind = "passthrough"
"#
    );
    let daemon = Daemon::new(Config::from_toml(&toml).unwrap()).unwrap();
    // Counted like arv-camera-test counts: from the start of acquisition, start-up included.
    let t0 = Instant::now();
    daemon.start(None).expect("genicam source starts");
    std::thread::sleep(Duration::from_secs(seconds).saturating_sub(t0.elapsed()));
    let after = daemon.status();
    let dt = t0.elapsed().as_secs_f64();
    daemon.stop().unwrap();
    let n = after.stages[1].frames_in;
    let lost = after.frames_missing
        + after.frames_incomplete
        + after.frames_lost_no_buffer
        + after.frames_dropped_ring;
    let bytes = n as f64 * (size as f64 * size as f64 * 2.0);
    (n as f64 / dt, bytes / dt / (1 << 20) as f64, n, lost)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list`
    }
    let seconds: u64 = std::env::var("GENICAM_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let sizes: Vec<u32> = std::env::var("GENICAM_BENCH_SIZES")
        .unwrap_or_else(|_| "512,1024,2048".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let rounds: u32 = std::env::var("GENICAM_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let _fake = start_fake();
    println!(
        "\nFake GigE Vision camera on 127.0.0.1, Mono16, requested 1000 fps, {seconds} s each\n"
    );
    println!("| frame | tool | frames/s | MiB/s | frames | lost |");
    println!("| --- | --- | ---: | ---: | ---: | ---: |");
    for size in sizes
        .iter()
        .flat_map(|&s| std::iter::repeat_n(s, rounds as usize))
    {
        // Alternate, so that both see the same machine load.
        let a = aravis_tool(size, seconds);
        let s = scopepilot(size, seconds);
        for (tool, (fps, mib, n, lost)) in [
            ("arv-camera-test-0.8", a),
            ("scopepilot genicam -> pipeline", s),
        ] {
            println!("| {size}x{size} | {tool} | {fps:.1} | {mib:.1} | {n} | {lost} |");
        }
        println!(
            "| {size}x{size} | ratio scopepilot / Aravis | {:.2} | | | |",
            s.0 / a.0.max(1e-9)
        );
    }
}
