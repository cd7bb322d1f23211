//! The `genicam` source against Aravis's fake GigE Vision camera on 127.0.0.1.
//!
//! Run with `scripts/test-genicam.sh`: it builds outside, then runs these tests inside a
//! private network namespace (`unshare -n`) where only the loopback interface exists. The
//! tests refuse to run when another interface is visible (set
//! `SCOPEPILOT_GENICAM_HOST_NETWORK=1` to override), and open cameras by IP 127.0.0.1 only:
//! nothing here ever broadcasts device discovery.
//!
//! Both fake cameras are used: the in-process `GvFakeCamera` (pixel pattern) and the external
//! `arv-fake-gv-camera-0.8 -i 127.0.0.1`, started and stopped by PID (everything else,
//! including `-r` packet loss). Only one fake camera can own 127.0.0.1:3956, so the tests take
//! turns.

#![cfg(feature = "genicam")]

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use scopepilot::config::Config;
use scopepilot::daemon::{Daemon, DaemonError};
use scopepilot::frame::{Frame, FramePool, Pixels};
use scopepilot::ring::{OverflowPolicy, ingest_ring};
use scopepilot::sink::subscribers::Subscription;
use scopepilot::source::camera_control::CameraSettings;
use scopepilot::source::genicam::{GenicamConfig, GenicamPixelFormat, GenicamSource};
use scopepilot::source::runner::SourceThread;
use scopepilot::source::{Capture, FrameInterval, FrameSource};

static TURN: Mutex<()> = Mutex::new(());

/// One test at a time on 127.0.0.1:3956, and only inside a private network namespace.
fn camera_turn() -> MutexGuard<'static, ()> {
    let guard = TURN.lock().unwrap_or_else(|e| e.into_inner());
    if std::env::var_os("SCOPEPILOT_GENICAM_HOST_NETWORK").is_none() {
        // /proc/self/net/dev lists the interfaces of this process's network namespace
        // (/sys/class/net shows the namespace sysfs was mounted in).
        let others: Vec<String> = std::fs::read_to_string("/proc/self/net/dev")
            .unwrap_or_default()
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next().map(|n| n.trim().to_string()))
            .filter(|n| n != "lo")
            .collect();
        assert!(
            others.is_empty(),
            "genicam tests must run in a private network namespace (scripts/test-genicam.sh); \
             visible interfaces: {others:?}"
        );
    }
    guard
}

/// `arv-fake-gv-camera-0.8 -i 127.0.0.1`, killed by PID when dropped.
struct ExternalFake {
    child: Child,
}

impl ExternalFake {
    fn start(loss_per_thousand: Option<u32>) -> Self {
        Self::with_serial(loss_per_thousand, "GV01")
    }

    fn with_serial(loss_per_thousand: Option<u32>, serial: &str) -> Self {
        let mut cmd = Command::new("arv-fake-gv-camera-0.8");
        cmd.args(["-i", "127.0.0.1", "-s", serial]);
        if let Some(r) = loss_per_thousand {
            cmd.args(["-r", &r.to_string()]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("arv-fake-gv-camera-0.8 (Debian package aravis-tools) starts");
        Self { child }
    }
}

impl ExternalFake {
    /// Freeze (`STOP`) or thaw (`CONT`) the camera process: a camera that stops sending.
    fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill -{signal} the fake camera");
    }
}

impl Drop for ExternalFake {
    fn drop(&mut self) {
        let _ = self.child.kill(); // SIGKILL to this PID only
        let _ = self.child.wait();
    }
}

fn config(w: u32, h: u32, rate: f64) -> GenicamConfig {
    GenicamConfig {
        pixel_format: GenicamPixelFormat::Mono16,
        exposure_us: Some(10_000.0),
        gain: Some(0.0),
        frame_rate_hz: rate,
        roi: Some([0, 0, w, h]),
        buffers: 16,
        ..GenicamConfig::at_address("127.0.0.1")
    }
}

/// Open the camera, retrying while the fake camera comes up.
fn open(cfg: &GenicamConfig, interval: Arc<FrameInterval>) -> GenicamSource {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match GenicamSource::open(cfg, interval.clone()) {
            Ok(s) => return s,
            Err(e) if Instant::now() < deadline => {
                eprintln!("waiting for the fake camera: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("cannot open the fake camera: {e}"),
        }
    }
}

/// Capture `n` frames (or until `timeout`), keeping none.
fn capture_frames(
    src: &mut GenicamSource,
    pool: &mut FramePool,
    n: usize,
    timeout: Duration,
) -> Vec<Frame> {
    let deadline = Instant::now() + timeout;
    let mut frames = Vec::new();
    while frames.len() < n && Instant::now() < deadline {
        if let Capture::Frame(f) = src.capture(pool).unwrap() {
            frames.push(f);
        }
    }
    frames
}

/// The id `k` such that every pixel is the fake camera's Mono16 diagonal ramp
/// `((x + y + k) * 256) % 65535` (gain 0, exposure 10 ms: scale 1).
fn ramp_id(frame: &Frame) -> u64 {
    scaled_ramp_id(frame, 1)
}

/// The id `k` such that every pixel is the fake camera's Mono16 diagonal ramp times `scale`,
/// `min(scale * (((x + y + k) * 256) % 65535), 65535)`; `scale` is
/// `1 + gain + log10(exposure_us / 10000)`.
fn scaled_ramp_id(frame: &Frame, scale: u64) -> u64 {
    let Pixels::U16(px) = frame.pixels() else {
        panic!("expected 16-bit pixels")
    };
    let w = frame.width() as u64;
    let value = |x: u64, y: u64, k: u64| (scale * (((x + y + k) * 256) % 65535)).min(65535);
    // The first row (at least 256 pixels: one whole period of the ramp) fixes k.
    let row = w.min(256);
    let k = (0..65535u64)
        .find(|&k| (0..row).all(|x| px[x as usize] as u64 == value(x, 0, k)))
        .unwrap_or_else(|| {
            panic!(
                "frame {}: first row {:?}... is not the ramp times {scale}",
                frame.meta().frame_number,
                &px[..8]
            )
        });
    for (i, &p) in px.iter().enumerate() {
        let (x, y) = (i as u64 % w, i as u64 / w);
        assert_eq!(
            p as u64,
            value(x, y, k),
            "pixel ({x}, {y}) of frame {} (scale {scale})",
            frame.meta().frame_number
        );
    }
    k
}

#[test]
fn in_process_fake_camera_pixels_match_its_mono16_pattern() {
    let _turn = camera_turn();
    let fake = aravis::GvFakeCamera::new_full(Some("127.0.0.1"), Some("INPROC1"), None);
    assert!(
        fake.is_running(),
        "in-process fake camera listens on 127.0.0.1"
    );
    let cfg = config(256, 128, 50.0);
    let mut src = open(&cfg, FrameInterval::from_rate_hz(cfg.frame_rate_hz));
    assert_eq!(src.spec().to_string(), "256x128 u16");
    let mut pool = FramePool::new(src.spec(), 24, 24);
    let frames = capture_frames(&mut src, &mut pool, 20, Duration::from_secs(10));
    assert_eq!(frames.len(), 20);
    let first = &frames[0];
    let k0 = ramp_id(first);
    for f in &frames {
        let k = ramp_id(f);
        let n = f.meta().frame_number - first.meta().frame_number;
        assert_eq!(k, (k0 + n) % 65535, "ramp advances by one per frame number");
        assert_eq!(f.meta().exposure_us, 10_000);
        assert!(!f.meta().synthetic);
    }
    let losses = src.losses();
    assert_eq!((losses.missing, losses.incomplete), (0, 0));
    drop(src);
    drop(fake);
}

#[test]
fn frames_are_continuous_and_the_frame_rate_follows_the_interval() {
    let _turn = camera_turn();
    let _fake = ExternalFake::start(None);
    let cfg = config(256, 256, 100.0);
    let interval = FrameInterval::from_rate_hz(cfg.frame_rate_hz);
    let mut src = open(&cfg, interval.clone());
    let mut pool = FramePool::new(src.spec(), 104, 104);
    let fast = capture_frames(&mut src, &mut pool, 100, Duration::from_secs(10));
    assert_eq!(fast.len(), 100);
    // Every frame, in order, numbered from 0 without gaps; camera timestamps kept.
    for (i, f) in fast.iter().enumerate() {
        assert_eq!(f.meta().frame_number, i as u64);
    }
    let spacing = |frames: &[Frame]| {
        let t: Vec<u64> = frames
            .iter()
            .map(|f| f.meta().camera_timestamp_ns)
            .collect();
        assert!(
            t.windows(2).all(|w| w[1] > w[0]),
            "camera timestamps increase"
        );
        (t[t.len() - 1] - t[0]) as f64 / (t.len() - 1) as f64 / 1e6
    };
    // The fake camera skips a frame slot when it falls behind (it renders in software on the
    // same CPU), so only the lower bound is a property of the camera: never faster than asked.
    let fast_ms = spacing(&fast);
    assert!(fast_ms >= 9.5, "100 fps: {fast_ms} ms between frames");

    // What SetFrameInterval and the rules' set_interval do: the camera follows.
    interval.set(Duration::from_millis(25)).unwrap();
    drop(fast); // back to the pool
    let _ = capture_frames(&mut src, &mut pool, 5, Duration::from_secs(5)); // settle
    let rate = src.camera_frame_rate().unwrap();
    assert!((rate - 40.0).abs() < 0.01, "AcquisitionFrameRate is {rate}");
    let slow = capture_frames(&mut src, &mut pool, 30, Duration::from_secs(10));
    let slow_ms = spacing(&slow);
    assert!(slow_ms >= 24.5, "40 fps: {slow_ms} ms between frames");
    // No frame id is skipped. A loaded machine can still lose a loopback UDP packet (one
    // incomplete frame in a CI run); such a frame is counted as incomplete, the same buffer
    // Aravis counts as a failure, never silent. packet_loss_is_accounted_for_exactly pins the
    // accounting under loss.
    let losses = src.losses();
    assert_eq!(losses.missing, 0);
    let aravis = src.stream_stats();
    assert!(aravis.failures >= losses.incomplete);
    assert!(aravis.failures <= losses.incomplete + cfg.buffers as u64);
    assert_eq!(aravis.underruns, 0);
}

#[test]
fn packet_loss_is_accounted_for_exactly() {
    let _turn = camera_turn();
    // 2% of packets dropped, never resent: about half the 128x128 frames lose a packet.
    let _fake = ExternalFake::start(Some(20));
    let cfg = config(128, 128, 200.0);
    let mut src = open(&cfg, FrameInterval::from_rate_hz(cfg.frame_rate_hz));
    let mut pool = FramePool::new(src.spec(), 4, 4);
    let mut delivered = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        if let Capture::Frame(f) = src.capture(&mut pool).unwrap() {
            delivered.push(f.meta().frame_number);
            ramp_id(&f); // a frame handed on is whole
        }
    }
    let losses = src.losses();
    let last = src.last_frame_number().expect("frames arrived");
    let aravis = src.stream_stats();
    drop(src);
    eprintln!(
        "delivered {} incomplete {} missing {} last {last}; aravis {aravis:?}",
        delivered.len(),
        losses.incomplete,
        losses.missing
    );
    assert!(
        delivered.windows(2).all(|w| w[1] > w[0]),
        "numbers increase"
    );
    assert!(
        losses.incomplete > 10,
        "packet loss makes incomplete frames"
    );
    assert!(delivered.len() > 50, "complete frames still arrive");
    // Every frame number from the first to the last is exactly one of: delivered, incomplete,
    // missing.
    assert_eq!(
        delivered.len() as u64 + losses.incomplete + losses.missing,
        last + 1,
        "every frame accounted for"
    );
    // And our numbers agree with Aravis's own statistics (taken before the stream closed;
    // a buffer may complete between the last pop and the snapshot).
    assert!(aravis.completed >= delivered.len() as u64);
    assert!(aravis.completed <= delivered.len() as u64 + cfg.buffers as u64);
    assert!(aravis.failures >= losses.incomplete);
    assert!(aravis.failures <= losses.incomplete + cfg.buffers as u64);
    assert!(aravis.missing_packets > 0);
}

#[test]
fn a_slow_consumer_loses_frames_in_the_ring_never_at_the_camera() {
    let _turn = camera_turn();
    let _fake = ExternalFake::start(None);
    let cfg = config(256, 256, 200.0);
    let interval = FrameInterval::from_rate_hz(cfg.frame_rate_hz);
    let src = open(&cfg, interval.clone());
    let (producer, consumer) = ingest_ring(4, OverflowPolicy::DropOldest);
    let ring = producer.stats();
    let thread = SourceThread::spawn(Box::new(src), producer, 8, interval).unwrap();
    let stats = thread.stats();
    // The phases are timed from the first frame, so a camera slow to start streaming (a
    // loaded machine) does not shorten them.
    let first = consumer
        .pop_timeout(Duration::from_secs(10))
        .expect("the fake camera streams");
    let mut seen = vec![first.meta().frame_number];
    drop(first);
    // Phase 1: a consumer that takes a frame every 40 ms (25 fps of 200).
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        if let Some(f) = consumer.pop_timeout(Duration::from_millis(5)) {
            seen.push(f.meta().frame_number);
            std::thread::sleep(Duration::from_millis(40));
        }
    }
    // Phase 2: a consumer that keeps every frame it takes: the pool runs dry.
    let mut held = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        if let Some(f) = consumer.pop_timeout(Duration::from_millis(5)) {
            held.push(f);
        }
    }
    thread.stop();
    let mut left_in_ring = 0u64;
    while consumer.try_pop().is_some() {
        left_in_ring += 1;
    }
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let (captured, lost_no_buffer) = (load(&stats.captured), load(&stats.lost_no_buffer));
    let (missing, incomplete) = (load(&stats.missing), load(&stats.incomplete));
    let dropped = ring.counters().dropped();
    eprintln!(
        "captured {captured} lost_no_buffer {lost_no_buffer} ring dropped {dropped} \
         missing {missing} incomplete {incomplete} seen {} held {} left {left_in_ring}",
        seen.len(),
        held.len()
    );
    assert!(seen.windows(2).all(|w| w[1] > w[0]));
    // Every frame the camera thread captured was taken, dropped by the ring, or is still in
    // it: nothing vanished between the camera and the consumer.
    assert_eq!(
        captured,
        (seen.len() + held.len()) as u64 + dropped + left_in_ring,
        "every captured frame accounted for"
    );
    assert!(
        dropped > 0,
        "the ring dropped the frames the consumer could not take"
    );
    assert!(lost_no_buffer > 0, "held frames exhaust the pool, counted");
    // The camera thread kept popping at the camera's pace: Aravis never ran out of buffers,
    // so no frame id was skipped and every frame the camera sent was either captured or
    // counted as lost for want of a buffer.
    assert_eq!((missing, incomplete), (0, 0));
}

#[test]
fn the_daemon_runs_a_genicam_source_and_reports_it() {
    let _turn = camera_turn();
    let _fake = ExternalFake::start(None);
    let (daemon, sub) = running_daemon([0, 0, 320, 240]);
    let mut frames = Vec::new();
    while frames.len() < 20 {
        frames.push(
            sub.recv_timeout(Duration::from_secs(5))
                .expect("frames flow"),
        );
    }
    ramp_id(&frames[5]);
    // A rule or client slows the camera down: 50 -> 20 fps.
    daemon
        .set_frame_interval(Duration::from_millis(50))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    while sub.recv_timeout(Duration::from_millis(1)).is_ok() {}
    let mut slow = Vec::new();
    while slow.len() < 10 {
        slow.push(
            sub.recv_timeout(Duration::from_secs(5))
                .expect("frames flow"),
        );
    }
    let t: Vec<u64> = slow.iter().map(|f| f.meta().camera_timestamp_ns).collect();
    let ms = (t[9] - t[0]) as f64 / 9.0 / 1e6;
    // 50 ms; more when the fake camera misses a slot on a busy machine.
    assert!(
        ms >= 49.0,
        "{ms} ms between frames after set_frame_interval"
    );
    let status = daemon.stop().unwrap();
    assert_eq!(status.source, "genicam");
    assert_eq!(status.spec.unwrap().to_string(), "320x240 u16");
    assert!(status.frames_acquired >= 30);
    assert_eq!((status.frames_missing, status.frames_incomplete), (0, 0));
    let mut p = scopepilot::metrics::PromText::default();
    scopepilot::metrics::write_status(&mut p, &status, &[], "cpu");
    let text = p.finish();
    assert!(text.contains("scopepilot_frames_missing_total 0"), "{text}");
    assert!(text.contains("scopepilot_frames_incomplete_total 0"));
}

#[test]
fn a_camera_that_stalls_is_reported_and_resumes_with_every_frame_accounted_for() {
    let _turn = camera_turn();
    let fake = ExternalFake::start(None);
    let (daemon, sub) = running_daemon([0, 0, 128, 128]);
    let mut last = 0;
    for _ in 0..20 {
        last = sub
            .recv_timeout(Duration::from_secs(5))
            .expect("frames flow")
            .meta()
            .frame_number;
    }
    assert!(!daemon.status().source_stalled);
    // The camera stops sending (a cable pulled, a trigger that never comes): within the stall
    // threshold (ten 20 ms intervals, floored at 1 s) the status says so, and the daemon serves.
    fake.signal("STOP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !daemon.status().source_stalled {
        assert!(Instant::now() < deadline, "the stall is reported");
        std::thread::sleep(Duration::from_millis(50));
    }
    let stalled = daemon.status();
    assert_eq!(stalled.source_stalls, 1);
    assert!(stalled.since_last_frame.unwrap() > Duration::from_secs(1));
    let mut p = scopepilot::metrics::PromText::default();
    scopepilot::metrics::write_status(&mut p, &stalled, &[], "cpu");
    assert!(p.finish().contains("scopepilot_source_stalled 1"));
    std::thread::sleep(Duration::from_millis(1000));
    // It comes back: frames flow again, the stall is over, and it was one stall.
    fake.signal("CONT");
    while let Ok(f) = sub.recv_timeout(Duration::from_millis(100)) {
        last = last.max(f.meta().frame_number);
    }
    for _ in 0..20 {
        let f = sub
            .recv_timeout(Duration::from_secs(10))
            .expect("frames flow again");
        last = last.max(f.meta().frame_number);
    }
    let resumed = daemon.status();
    assert!(!resumed.source_stalled);
    assert_eq!(resumed.source_stalls, 1);
    let status = daemon.stop().unwrap();
    while let Ok(f) = sub.recv_timeout(Duration::from_millis(100)) {
        last = last.max(f.meta().frame_number);
    }
    eprintln!(
        "acquired {} lost {} missing {} incomplete {} last {last}",
        status.frames_acquired,
        status.frames_lost_no_buffer,
        status.frames_missing,
        status.frames_incomplete
    );
    // Every frame number up to the last one is exactly one of: acquired, lost for want of a
    // buffer, missing at the camera, or incomplete (the frame in flight when it froze).
    assert_eq!(
        status.frames_acquired
            + status.frames_lost_no_buffer
            + status.frames_missing
            + status.frames_incomplete,
        last + 1,
        "every frame accounted for"
    );
    assert_eq!(status.frames_dropped_ring, 0);
}

#[test]
fn cameras_open_by_serial_number_and_by_name() {
    let _turn = camera_turn();
    // Discovery broadcasts, which is why only this namespace (loopback only) may run it.
    let _fake = ExternalFake::with_serial(None, "SPTEST7");
    let by_serial = GenicamConfig {
        address: None,
        serial: Some("SPTEST7".into()),
        ..config(256, 64, 50.0)
    };
    let mut src = open(&by_serial, FrameInterval::from_rate_hz(50.0));
    let mut pool = FramePool::new(src.spec(), 8, 8);
    let frames = capture_frames(&mut src, &mut pool, 3, Duration::from_secs(10));
    assert_eq!(frames.len(), 3);
    ramp_id(&frames[2]);
    drop(frames);
    drop(src);

    let by_name = GenicamConfig {
        address: None,
        name: Some("Aravis-Fake-SPTEST7".into()),
        ..config(256, 64, 50.0)
    };
    let mut src = open(&by_name, FrameInterval::from_rate_hz(50.0));
    assert_eq!(src.spec().to_string(), "256x64 u16");
    let frames = capture_frames(&mut src, &mut pool, 3, Duration::from_secs(10));
    assert_eq!(frames.len(), 3);
    drop(frames);
    drop(src);

    let nobody = GenicamConfig {
        address: None,
        serial: Some("NOSUCHCAM".into()),
        ..config(256, 64, 50.0)
    };
    let e = GenicamSource::open(&nobody, FrameInterval::from_rate_hz(50.0)).unwrap_err();
    assert!(e.to_string().contains("\"NOSUCHCAM\""), "{e}");
}

/// Frames from `sub` once the camera has had time to expose with new settings (frames
/// already exposed wait in Aravis's buffers).
fn frames_after_change(sub: &Subscription, n: usize) -> Vec<Frame> {
    std::thread::sleep(Duration::from_millis(300));
    while sub.recv_timeout(Duration::from_millis(1)).is_ok() {}
    (0..n)
        .map(|_| {
            sub.recv_timeout(Duration::from_secs(5))
                .expect("frames flow")
        })
        .collect()
}

#[test]
fn exposure_and_gain_change_while_running_and_roi_waits_for_the_next_start() {
    let _turn = camera_turn();
    let _fake = ExternalFake::start(None);
    let (daemon, sub) = running_daemon([0, 0, 256, 64]);
    let before = frames_after_change(&sub, 3);
    scaled_ramp_id(&before[2], 1);
    assert_eq!(before[2].meta().exposure_us, 10_000);

    // 10 ms -> 100 ms exposure: the fake camera's scale goes 1 -> 2.
    let outcome = daemon
        .set_camera_settings(CameraSettings {
            exposure_us: Some(100_000.0),
            ..Default::default()
        })
        .unwrap();
    assert!(outcome.applied);
    assert_eq!(outcome.settings.exposure_us, Some(100_000.0));
    assert_eq!(outcome.settings.gain, Some(0.0));
    assert_eq!(outcome.settings.roi, Some([0, 0, 256, 64]));
    let brighter = frames_after_change(&sub, 3);
    for f in &brighter {
        scaled_ramp_id(f, 2);
        assert_eq!(f.meta().exposure_us, 100_000);
    }

    // And gain 1 on top: scale 3.
    let outcome = daemon
        .set_camera_settings(CameraSettings {
            gain: Some(1.0),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(outcome.settings.gain, Some(1.0));
    for f in &frames_after_change(&sub, 3) {
        scaled_ramp_id(f, 3);
    }

    // The region changes the frame size: refused while running, kept when idle.
    let region = CameraSettings {
        roi: Some([0, 0, 128, 32]),
        binning: Some(2),
        ..Default::default()
    };
    let e = daemon.set_camera_settings(region).unwrap_err();
    assert!(
        matches!(e, DaemonError::FailedPrecondition(ref m) if m.contains("frame size")),
        "{e}"
    );
    // A value the camera cannot take is its error, and the camera keeps running.
    let e = daemon
        .set_camera_settings(CameraSettings {
            exposure_us: Some(3.0e9),
            ..Default::default()
        })
        .unwrap_err();
    assert!(matches!(e, DaemonError::InvalidArgument(_)), "{e}");
    daemon.stop().unwrap();

    let idle = daemon.set_camera_settings(region).unwrap();
    assert!(!idle.applied);
    start_when_the_camera_answers(&daemon);
    let now = daemon
        .set_camera_settings(CameraSettings::default())
        .unwrap();
    assert!(
        now.applied,
        "an empty request reads the running camera back"
    );
    assert_eq!(now.settings.roi, Some([0, 0, 128, 32]));
    assert_eq!(now.settings.binning, Some(2));
    assert_eq!(
        now.settings.exposure_us,
        Some(100_000.0),
        "earlier changes are kept"
    );
    let small = frames_after_change(&sub, 2);
    assert_eq!((small[1].width(), small[1].height()), (128, 32));
    let status = daemon.stop().unwrap();
    assert_eq!(status.spec.unwrap().to_string(), "128x32 u16");
    assert_eq!((status.frames_missing, status.frames_incomplete), (0, 0));
}

/// A daemon streaming the fake camera's `roi` (Mono16, 10 ms, gain 0, 50 fps) through a
/// passthrough stage, and a subscription to its raw frames.
fn running_daemon(roi: [u32; 4]) -> (Arc<Daemon>, Subscription) {
    let [x, y, w, h] = roi;
    let toml = format!(
        r#"
[api]
listen = "127.0.0.1:0"
[acquisition]
ring_capacity = 16
[source]
kind = "genicam"
[source.genicam]
address = "127.0.0.1"
pixel_format = "mono16"
exposure_us = 10000
gain = 0
frame_rate_hz = 50
roi = [{x}, {y}, {w}, {h}]
buffers = 8
[[stages]]
name = "copy"
kind = "passthrough"
"#
    );
    let daemon = Daemon::new(Config::from_toml(&toml).unwrap()).unwrap();
    let sub = daemon.subscribe("raw", 64).unwrap();
    start_when_the_camera_answers(&daemon);
    (daemon, sub)
}

/// Start the daemon, retrying while the fake camera comes up.
fn start_when_the_camera_answers(daemon: &Daemon) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = daemon.start(None) {
        assert!(Instant::now() < deadline, "start: {e}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
