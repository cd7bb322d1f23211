#!/usr/bin/env python3
"""Soak: the real daemon runs a full 512x512 @ 100 fps pipeline for a bounded time (denoise,
division detection, zstd recording of raw, three gRPC subscribers, one of them slow, and a
burst of many concurrent subscribers in the middle); the report says whether every frame is
accounted for, whether memory stayed flat and whether latency stayed stable.

It starts the release binary (``target/release/scopepilot``, or ``$SCOPEPILOT_BIN``) with the
config below: a simulated camera at 100 fps; a ``denoise`` stage (``models/denoise-fast-nuclei``,
whole frames) and a ``detect`` stage (``models/detect-divisions``), both reading ``raw`` through
4-frame ``drop_oldest`` queues; recording of ``raw`` with zstd. On two CPU cores neither learned
stage keeps up with 100 fps (~14 ms of inference per frame each), so both drop frames by their
queue policy, and those drops must be counted exactly. Detection reads ``raw``, as a user would
configure it: the model was trained on pairs of consecutive raw camera frames with a fixed ADU
normalisation inside the graph (docs/detection.md), and reading ``denoised`` would give it
float frames of another scale, thinned by the denoiser's own drops.

While the recording runs:

* three subscribers (threads, one gRPC connection each): ``raw`` and ``denoised`` read as fast
  as they can, a slow one reads ``raw`` and sleeps ``--slow-ms`` per frame. Each frame carries
  the server's count of frames dropped for that subscriber, so for a ``raw`` subscriber every
  gap in the frame numbers it received must equal the growth of that count (exact);
* ``GetStatus``, the daemon's RSS (``/proc/<pid>/status`` VmRSS) and ``/metrics`` are sampled
  every 10 s; the per-interval p99 latency of each stream comes from the difference of two
  ``scopepilot_stage_latency_seconds`` histograms (four buckets per power of two, interpolated inside a
  bucket like Prometheus' ``histogram_quantile``);
* from a third of the run, ``--clients`` more subscribers (default 50, 0 = none) read ``raw``
  for ``--clients-seconds``; camera losses during that phase are compared with the same length
  of time just before it.

At the end it stops the subscribers and the recording, stops the acquisition (the pipeline
drains, counters freeze), checks every stage's counters add up and agree with ``/metrics``,
reads the store back with zarr-python (time axis, consecutive frame numbers, the window of
frames acquired while recording) and deletes it.

    ./scripts/setup-venv.sh && cargo build --release
    .venv/bin/python scripts/soak.py --seconds 900 [--workdir DIR] [--clients 50]
    .venv/bin/python scripts/soak.py --record-only --seconds 600   # the recording-only soak

Disk: the simulated frames compress 1.9x with zstd 1, 0.27 MB per frame: ~25 GB for 900 s
(``--compression none``: 0.5 MiB per frame, 47 GB). Level 1, because the single writer thread
must keep 100 fps while inference takes every spare cycle (negative levels barely compress
camera noise, level 3 costs twice the CPU for 1.05x). CPU: both cores, all the time (the learned
stages use whatever the camera, the writer and the subscribers leave). Prints a Markdown report
(for docs/benchmarks.md); exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "python"))
os.environ.setdefault("SCOPEPILOT_BIN", str(REPO / "target" / "release" / "scopepilot"))

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import zarr  # noqa: E402
from conftest import CHANNEL_OPTIONS, Daemon  # noqa: E402  (also generates the gRPC stubs)
from scopepilot.v1 import acquisition_pb2 as acq_pb2  # noqa: E402
from scopepilot.v1 import acquisition_pb2_grpc as acq_grpc  # noqa: E402
from scopepilot.v1 import frames_pb2  # noqa: E402
from scopepilot.v1 import frames_pb2_grpc as frames_grpc  # noqa: E402
from scopepilot.v1 import recording_pb2 as rec_pb2  # noqa: E402
from scopepilot.v1 import recording_pb2_grpc as rec_grpc  # noqa: E402

BASE_CONFIG = """
[api]
listen = "127.0.0.1:0"

[acquisition]
autostart = true
ring_capacity = 64
ring_policy = "drop_oldest"

[source]
kind = "simulated"

[source.simulated]
width = 512
height = 512
frame_rate_hz = 100.0
seed = 7

[recording]
root = "recordings"
memory_budget_mib = 512
compression = "{compression}"
zstd_level = {zstd_level}
frames_per_chunk = {frames_per_chunk}

[log]
filter = "warn"
"""

# The learned stages. Model paths are absolute: the daemon runs in the work directory.
STAGES_CONFIG = """
[[stages]]
name = "denoised"
kind = "denoise"
input = "raw"
queue = {{ capacity = 4, policy = "drop_oldest" }}
params = {{ model = "{models}/denoise-fast-nuclei", tile = 512 }}

[[stages]]
name = "divisions"
kind = "detect"
input = "raw"
queue = {{ capacity = 4, policy = "drop_oldest" }}
params = {{ detector = "model", model = "{models}/detect-divisions" }}

# One ONNX Runtime thread per learned stage: two sessions on two cores. More threads per
# session only make them fight over the cores with each other and with the camera and the
# recording writer; idle inference threads sleep (see config/default.toml).
[inference]
provider = "cpu"
intra_threads = 1
spinning = false
"""

SAMPLE_S = 10.0
# "Stable" p99: the median of the per-interval p99s over the last third of the run is at most
# this many times the median over the first third (or within P99_SLACK_MS of it).
P99_RATIO = 1.5
P99_SLACK_MS = 0.5
RSS_GROWTH_PCT = 5.0
SUB_QUEUE = 4  # [subscribers] queue_capacity, the daemon's default
# Each subscriber gets a TCP connection of its own (grpc-python shares one between channels
# with the same target and options otherwise).
# Share of its frame rate the camera must keep while the many clients read.
CLIENTS_RATE_KEPT = 0.97

SUB_OPTIONS = CHANNEL_OPTIONS + [("grpc.use_local_subchannel_pool", 1)]


def stolen_pct(samples: list) -> float:
    """Share of the machine's CPU the hypervisor took from the first to the last of `samples`
    (each with ``t`` and ``steal_s``), percent; NaN for fewer than two."""
    if len(samples) < 2 or samples[-1].t <= samples[0].t:
        return float("nan")
    stolen = samples[-1].steal_s - samples[0].steal_s
    return 100 * stolen / ((samples[-1].t - samples[0].t) * (os.cpu_count() or 1))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_s(pid: int) -> float:
    """CPU time (user + system) the process has used, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def steal_s() -> float:
    """CPU time the hypervisor has taken from this machine so far (all CPUs), seconds."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()  # cpu user nice ... steal
    return int(fields[8]) / os.sysconf("SC_CLK_TCK")


def camera_lost(st) -> int:
    return st.frames_dropped_ring + st.frames_lost_no_buffer


def stage(st, name: str):
    return next(s for s in st.stages if s.name == name)


# --- /metrics ------------------------------------------------------------------------------

SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL_RE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """``/metrics`` as {(name, sorted labels): value}; never through a proxy."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    text = opener.open(url + "/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        m = SAMPLE_RE.match(line)
        if m and not line.startswith("#"):
            labels = tuple(sorted(LABEL_RE.findall(m.group(2) or "")))
            out[(m.group(1), labels)] = float(m.group(3))
    return out


def latency_buckets(metrics, stream: str) -> list[tuple[float, float]]:
    """Cumulative (upper bound s, count) of one stream's arrival-to-output latency."""
    rows = []
    for (name, labels), v in metrics.items():
        d = dict(labels)
        if name == "scopepilot_stage_latency_seconds_bucket" and d.get("stage") == stream:
            rows.append((math.inf if d["le"] == "+Inf" else float(d["le"]), v))
    return sorted(rows)


def interval_quantile(before, after, q: float) -> float | None:
    """Quantile (ms) of the durations recorded between two scrapes of one histogram."""
    delta = [(le, a - b) for (le, a), (_, b) in zip(after, before)]
    if not delta or delta[-1][1] <= 0:
        return None
    target = q * delta[-1][1]
    lo, below = 0.0, 0.0
    for le, n in delta:
        if n >= target:
            if math.isinf(le):
                return lo * 1e3  # beyond the last finite bound: report that bound
            return (lo + (le - lo) * (target - below) / max(n - below, 1e-9)) * 1e3
        lo, below = le, n
    return None


# --- subscribers ---------------------------------------------------------------------------


@dataclass
class SubResult:
    received: int = 0
    first: int | None = None
    last: int | None = None
    missing: int = 0  # frame numbers skipped between received frames
    dropped_first: int = 0  # server-reported subscriber_dropped at the first frame
    dropped_last: int = 0
    mismatches: int = 0  # gaps that differ from the growth of subscriber_dropped
    latency_us: list[int] = field(default_factory=list)
    error: str | None = None


class Subscriber(threading.Thread):
    """One SubscribeFrames stream on its own connection, read on its own thread."""

    def __init__(self, address: str, label: str, stream: str, delay_s: float = 0.0):
        super().__init__(name=label, daemon=True)
        self.label, self.stream, self.delay_s = label, stream, delay_s
        self.channel = grpc.insecure_channel(address, options=SUB_OPTIONS)
        self.call = frames_grpc.FramesStub(self.channel).SubscribeFrames(
            frames_pb2.SubscribeFramesRequest(stage=stream)
        )
        self.r = SubResult()
        self._stopping = threading.Event()

    def run(self) -> None:
        r = self.r
        try:
            for f in self.call:
                if r.first is None:
                    r.first, r.dropped_first = f.frame_number, f.subscriber_dropped
                else:
                    gap = f.frame_number - r.last - 1
                    r.missing += gap
                    # A subscriber's queue drops its oldest frames, so the frames dropped
                    # between two messages are the ones between their frame numbers. The count
                    # is read just after the frame left the queue, so an eviction racing that
                    # shows one message early (a mismatch here, evened out in the totals).
                    if gap != f.subscriber_dropped - r.dropped_last:
                        r.mismatches += 1
                r.last, r.dropped_last = f.frame_number, f.subscriber_dropped
                r.received += 1
                if r.received % 10 == 0:
                    r.latency_us.append(f.latency_us)
                if self.delay_s:
                    time.sleep(self.delay_s)
        except grpc.RpcError as e:
            if not self._stopping.is_set():
                r.error = f"{e.code().name}: {e.details()}"
        except Exception as e:  # noqa: BLE001  (reported, not swallowed)
            r.error = repr(e)

    def stop(self) -> SubResult:
        self._stopping.set()
        self.call.cancel()
        self.join(timeout=30)
        self.channel.close()
        return self.r

    @property
    def lost(self) -> int:
        return self.r.dropped_last - self.r.dropped_first


# --- the run -------------------------------------------------------------------------------


@dataclass
class Sample:
    t: float
    rss: float
    status: object
    p99_ms: dict[str, float | None]
    cpu_s: float
    load: float
    steal_s: float


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=900.0, help="recording time (default 900)")
    ap.add_argument("--workdir", type=Path, default=None, help="default: a new temp dir")
    ap.add_argument("--clients", type=int, default=50, help="concurrent subscribers phase (0 = off)")
    ap.add_argument("--clients-seconds", type=float, default=30.0)
    ap.add_argument("--slow-ms", type=float, default=200.0, help="slow subscriber's sleep per frame")
    ap.add_argument("--compression", choices=["zstd", "none"], default="zstd")
    ap.add_argument("--zstd-level", type=int, default=1)
    ap.add_argument("--frames-per-chunk", type=int, default=1)
    ap.add_argument(
        "--record-only",
        action="store_true",
        help="no learned stages and no subscribers: the recording soak alone",
    )
    args = ap.parse_args()
    if args.record_only:
        args.clients = 0
    clients_start = args.seconds / 3
    if args.clients and clients_start < args.clients_seconds + SAMPLE_S:
        sys.exit(f"--seconds {args.seconds:.0f} is too short for a {args.clients_seconds:.0f} s clients phase")

    config = BASE_CONFIG.format(
        compression=args.compression,
        zstd_level=args.zstd_level,
        frames_per_chunk=args.frames_per_chunk,
    )
    streams = ["raw"]
    if not args.record_only:
        config += STAGES_CONFIG.format(models=REPO / "models")
        streams += ["denoised", "divisions"]

    workdir = Path(tempfile.mkdtemp(prefix="scopepilot-soak-", dir=args.workdir))
    daemon = Daemon(config, workdir)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    subs: list[Subscriber] = []
    crowd: list[Subscriber] = []
    phase: dict[str, object] = {}
    try:
        ch = daemon.channel()
        acq = acq_grpc.AcquisitionStub(ch)
        rec = rec_grpc.RecordingStub(ch)
        status = lambda: acq.GetStatus(acq_pb2.GetStatusRequest(), timeout=10)  # noqa: E731
        time.sleep(5.0)  # let the source settle and the models warm up
        if not args.record_only:
            subs = [
                Subscriber(daemon.address, "raw, keeps up", "raw"),
                Subscriber(daemon.address, "denoised, keeps up", "denoised"),
                Subscriber(daemon.address, f"raw, slow ({args.slow_ms:.0f} ms/frame)", "raw", args.slow_ms / 1e3),
            ]
            for s in subs:
                s.start()
        before = status()
        rec.StartRecording(rec_pb2.StartRecordingRequest(name="soak", streams=["raw"]), timeout=10)
        started = status()
        t0 = time.monotonic()
        m_prev = scrape(daemon.http_url)
        cpu0 = cpu_s(daemon.proc.pid)
        samples: list[Sample] = []
        next_sample = SAMPLE_S
        while (elapsed := time.monotonic() - t0) < args.seconds:
            # Concurrent clients phase: snapshots 30 s before, at its start and at its end.
            if args.clients:
                if "pre" not in phase and elapsed >= clients_start - args.clients_seconds:
                    phase["pre"] = (elapsed, status())
                if "start" not in phase and elapsed >= clients_start:
                    phase["start"] = (elapsed, status())
                    crowd = [
                        Subscriber(daemon.address, f"client {i}", "raw") for i in range(args.clients)
                    ]
                    for c in crowd:
                        c.start()
                    log(f"t={elapsed:6.0f}s {len(crowd)} clients subscribed to raw")
                if "start" in phase and "end" not in phase and elapsed >= clients_start + args.clients_seconds:
                    phase["end"] = (elapsed, status())
                    phase["status_during"] = phase["end"][1]
                    phase["results"] = [c.stop() for c in crowd]
                    phase["errors"] = [c.r.error for c in crowd if c.r.error]
                    log(f"t={elapsed:6.0f}s clients closed")
            if elapsed >= next_sample:
                next_sample += SAMPLE_S
                st = status()
                m = scrape(daemon.http_url)
                p99 = {
                    s: interval_quantile(latency_buckets(m_prev, s), latency_buckets(m, s), 0.99)
                    for s in streams
                }
                m_prev = m
                pid = daemon.proc.pid
                samples.append(Sample(elapsed, rss_mib(pid), st, p99, cpu_s(pid), loadavg(), steal_s()))
                log(
                    f"t={elapsed:6.0f}s rss={samples[-1].rss:7.1f} MiB acquired={st.frames_acquired} "
                    f"written={st.recording.frames_written} not_recorded={st.recording.frames_not_recorded} "
                    f"queue={st.recording.queue_bytes / (1 << 20):.1f} MiB lost={camera_lost(st)} "
                    f"late={st.frames_late} steal={stolen_pct(samples[-2:]):.0f}% "
                    + " ".join(
                        f"{s}:drop={stage(st, s).frames_dropped},p99={v:.1f}ms" if v is not None else f"{s}:-"
                        for s, v in p99.items()
                    )
                )
            time.sleep(0.2)
        sub_status = status().subscribers
        results = [s.stop() for s in subs]
        stopping = status()
        final = rec.StopRecording(rec_pb2.StopRecordingRequest(), timeout=120).status
        after = status()
        drained = acq.Stop(acq_pb2.StopRequest(), timeout=60).status
        m_final = scrape(daemon.http_url)
        rss_final = rss_mib(daemon.proc.pid)
    finally:
        for c in crowd + subs:
            if c.is_alive():
                c.stop()
        daemon.stop()

    store_path = workdir / "recordings" / "soak.zarr"
    store_bytes = int(subprocess.run(["du", "-sb", str(store_path)], capture_output=True, text=True).stdout.split()[0])
    store = zarr.open_group(str(store_path), mode="r")
    t_len = store["raw"]["0"].shape[0]
    numbers = store["raw"]["frame_number"][:].astype(np.int64)
    gaps = int(np.count_nonzero(np.diff(numbers) != 1))
    first_last_ok = bool(np.any(store["raw"]["0"][0] != 0) and np.any(store["raw"]["0"][t_len - 1] != 0))
    shutil.rmtree(workdir, ignore_errors=True)

    checks: list[tuple[str, bool]] = []
    check = lambda what, ok: checks.append((what, bool(ok)))  # noqa: E731

    # Frames in = frames recorded: the store holds consecutive frames from one acquired between
    # the two status reads around StartRecording (or still in the ring then) to one acquired
    # before StopRecording returned, and nothing is missing in between.
    ring = before.ring_capacity
    first_n, last_n = int(numbers[0]), int(numbers[-1])
    window_ok = (
        before.frames_acquired - ring <= first_n <= started.frames_acquired
        and stopping.frames_acquired - ring <= last_n + 1 <= after.frames_acquired
    )
    check("store t axis == frames written (stream and total)", t_len == final.frames_written == final.streams[0].frames_written)
    check("frame numbers consecutive (0 gaps), last - first + 1 == t axis", gaps == 0 and last_n - first_n + 1 == t_len)
    check("recorded window matches the frames acquired while recording", window_ok)
    check("frames not recorded == 0", final.frames_not_recorded == 0)
    check("recording stopped cleanly, first and last frame hold pixels", final.state == rec_pb2.RECORDING_STATE_STOPPED and first_last_ok)
    lost = camera_lost(drained) - camera_lost(before)
    check("ring drops + pool losses == 0", lost == 0)

    # Every frame accounted for, per stream, once the pipeline drained.
    raw = stage(drained, "raw")
    flow = []
    for s in drained.stages:
        if s.name == "raw":
            continue
        src = stage(drained, s.input)
        ok = (
            src.frames_out == s.frames_in + s.frames_dropped
            and s.frames_in == s.frames_out + s.errors
            and s.queue_depth == 0
        )
        flow.append((s, ok))
        check(f"{s.name}: input frames == processed + policy drops, processed == out + errors", ok)
    check("raw: frames acquired == raw frames out", drained.frames_acquired == raw.frames_out + drained.frames_dropped_ring)
    # /metrics renders the same counters; after Stop they are frozen, so they must be equal.
    def metric(name, **labels):
        want = tuple(sorted(labels.items()))
        return next((v for (n, l), v in m_final.items() if n == name and all(x in l for x in want)), None)

    agree = metric("scopepilot_frames_acquired_total") == drained.frames_acquired and all(
        metric("scopepilot_stage_frames_dropped_total", stage=s.name) == s.frames_dropped
        and metric("scopepilot_stage_frames_in_total", stage=s.name) == s.frames_in
        for s in drained.stages
    )
    check("/metrics counters == GetStatus counters after Stop", agree)

    # Subscribers: losses counted and nobody else's. Totals must agree; only an eviction racing
    # the first or the last message (at most a queue's worth, 4 frames) may differ.
    def counted(s: Subscriber) -> bool:
        return abs(s.r.missing - s.lost) <= SUB_QUEUE
    for s, r in zip(subs, results):
        if s.stream == "raw":
            check(f"subscriber '{s.label}': frame-number gaps == its server-reported drops (+-{SUB_QUEUE})", counted(s))
        check(f"subscriber '{s.label}': stream ran to the end without error", r.error is None and r.received > 0)
    if subs:
        check("slow subscriber lost frames, all counted", subs[2].lost > 0 and counted(subs[2]))

    # Memory: pools fill on demand, and the recording queue (bounded by its budget) grows
    # while the writer is behind; the allocator keeps what was freed for reuse. A leak makes
    # new highs: the criterion is the peak after the reference time (half time, or after the
    # clients phase) against the peak before it.
    rss = [s.rss for s in samples]
    ref_t = max(args.seconds / 2, (clients_start + args.clients_seconds + SAMPLE_S) if args.clients else 0)
    ref = next((s for s in samples if s.t >= ref_t), samples[0])
    peak_before = max([s.rss for s in samples if s.t < ref.t] or [ref.rss])
    peak_after = max(s.rss for s in samples if s.t >= ref.t)
    growth = (peak_after - peak_before) / peak_before * 100
    check(
        f"RSS peak from t={ref.t:.0f} s to the end within {RSS_GROWTH_PCT:.0f} % of the peak before",
        growth < RSS_GROWTH_PCT,
    )

    # Latency: per-interval p99 of each stream, first third vs last third (intervals that
    # overlap the clients phase left out).
    def in_phase(s: Sample) -> bool:
        return bool(args.clients) and clients_start < s.t and s.t - SAMPLE_S < clients_start + args.clients_seconds

    thirds = {}
    for name in streams:
        firsts = [s.p99_ms[name] for s in samples if s.t <= args.seconds / 3 and not in_phase(s) and s.p99_ms[name] is not None]
        lasts = [s.p99_ms[name] for s in samples if s.t > 2 * args.seconds / 3 and not in_phase(s) and s.p99_ms[name] is not None]
        if firsts and lasts:
            a, b = statistics.median(firsts), statistics.median(lasts)
            thirds[name] = (firsts, lasts, a, b)
            check(f"{name}: p99 stable (last third median <= {P99_RATIO}x first, or +{P99_SLACK_MS} ms)", b <= a * P99_RATIO or b - a <= P99_SLACK_MS)

    # Concurrent clients phase: nothing added on the camera path.
    if args.clients and "end" in phase:
        (tp, pre), (ts, start), (te, end) = phase["pre"], phase["start"], phase["end"]
        def added(a, b):
            return (
                camera_lost(b) - camera_lost(a),
                b.frames_late - a.frames_late,
                b.recording.frames_not_recorded - a.recording.frames_not_recorded,
                (b.frames_acquired - a.frames_acquired) / (b.acquisition_time_s - a.acquisition_time_s),
            )
        phase_pre, phase_during = added(pre, start), added(start, end)
        # The camera path: nothing lost, nothing left unrecorded, and the camera keeps its pace
        # (a simulated camera misses a few slots now and then even without clients, so the
        # late count is reported, and the rate is what is checked).
        check(f"{args.clients} clients: 0 ring/pool losses and 0 not recorded added", (phase_during[0], phase_during[2]) == (0, 0))
        check(
            f"{args.clients} clients: camera rate during >= {CLIENTS_RATE_KEPT:.0%} of the rate before",
            phase_during[3] >= CLIENTS_RATE_KEPT * phase_pre[3],
        )
        check(f"{args.clients} clients: every client stream ran without error", not phase["errors"])

    # --- report ----------------------------------------------------------------------------
    elapsed = final.elapsed_s
    p = print
    what = "raw recorded" if args.record_only else "denoise + detect + raw recorded + 3 subscribers"
    comp = f"zstd {args.zstd_level}" if args.compression == "zstd" else "uncompressed"
    p(f"| soak | {args.seconds:.0f} s, 512x512 u16 @ 100 fps, {what}, {comp}, {args.frames_per_chunk} frame(s)/chunk |")
    p("|---|---|")
    p(f"| frames recorded (store's t axis) | {t_len} ({t_len / elapsed:.2f} frames/s), frame numbers {first_n}..{last_n} |")
    p(f"| frames acquired around the recording | {before.frames_acquired} / {started.frames_acquired} at start, {stopping.frames_acquired} / {after.frames_acquired} at stop |")
    p(f"| frames not recorded | {final.frames_not_recorded} |")
    p(f"| frame-number gaps in the store | {gaps} |")
    cores = (samples[-1].cpu_s - cpu0) / samples[-1].t
    loads = [s.load for s in samples]
    p(
        f"| CPU | daemon {cores:.2f} cores on average (of {os.cpu_count()}); machine load average (1 min) "
        f"{min(loads):.1f}-{max(loads):.1f} |"
    )
    p(f"| frames lost on the camera path (ring, pool), whole run | {lost} |")
    p(f"| frames late on the camera schedule, whole run | {drained.frames_late} |")
    ratio = final.bytes_written / store_bytes if store_bytes else 0
    p(
        f"| store | {final.bytes_written / (1 << 30):.2f} GiB of pixels, {store_bytes / (1 << 30):.2f} GiB on disk "
        f"(ratio {ratio:.2f}; {store_bytes / t_len / 1e6:.3f} MB/frame, {store_bytes / t_len * 90000 / 1e9:.1f} GB per 900 s) |"
    )
    queue_max = max(s.status.recording.queue_bytes for s in samples) / (1 << 20)
    p(f"| recording queue, max sampled | {queue_max:.1f} MiB of {final.queue_budget_bytes >> 20} MiB |")
    for s, ok in flow:
        p(
            f"| `{s.name}` ({s.kind}, {s.queue_policy} {s.queue_capacity}) | in {stage(drained, s.input).frames_out} = "
            f"processed {s.frames_in} + policy drops {s.frames_dropped} ({s.frames_dropped / max(1, s.frames_in + s.frames_dropped) * 100:.0f} %); "
            f"out {s.frames_out}, errors {s.errors}: {'exact' if ok else 'MISMATCH'}; latency p50/p99 {s.latency_p50_us / 1e3:.1f}/{s.latency_p99_us / 1e3:.1f} ms, "
            f"processing {s.process_p50_us / 1e3:.1f}/{s.process_p99_us / 1e3:.1f} ms |"
        )
    if not args.record_only:
        ev = drained.events
        p(f"| detections / events / detections dropped (rule engine queue) | {ev.detections} / {ev.events} / {ev.detections_dropped} |")
    for s, r in zip(subs, results):
        lat = sorted(r.latency_us)
        p50 = lat[len(lat) // 2] / 1e3 if lat else float("nan")
        gaps_note = (
            f"frame-number gaps {r.missing} (per message: {r.mismatches} off by a racing eviction)"
            if s.stream == "raw"
            else f"frames missing between received ones {r.missing} (the stage's own policy drops too)"
        )
        p(
            f"| subscriber {s.label} | received {r.received} ({r.received / elapsed:.1f}/s), "
            f"server-reported drops {s.lost}, {gaps_note}; "
            f"latency at build p50 {p50:.1f} ms{'; error ' + r.error if r.error else ''} |"
        )
    if sub_status:
        p(
            "| subscribers in GetStatus (delivered / dropped) | "
            + ", ".join(f"{x.stage} #{x.id}: {x.frames_delivered} / {x.frames_dropped}" for x in sub_status)
            + " |"
        )
    if args.clients and "end" in phase:
        rec_counts = sorted(r.received for r in phase["results"])
        drops = sorted(r.dropped_last - r.dropped_first for r in phase["results"])
        p(
            f"| {args.clients} clients on raw, {te - ts:.0f} s (t={ts:.0f}-{te:.0f} s) | frames received per client "
            f"min/median/max {rec_counts[0]}/{rec_counts[len(rec_counts) // 2]}/{rec_counts[-1]}, "
            f"total {sum(rec_counts) / (te - ts):.0f}/s; their server-reported drops median {drops[len(drops) // 2]}; errors {len(phase['errors'])} |"
        )
        p(
            f"| camera path, {ts - tp:.0f} s before / during the clients | losses {phase_pre[0]} / {phase_during[0]}, "
            f"late {phase_pre[1]} / {phase_during[1]}, not recorded {phase_pre[2]} / {phase_during[2]}, "
            f"camera {phase_pre[3]:.1f} / {phase_during[3]:.1f} frames/s |"
        )
    def stolen(lo: float, hi: float) -> float:
        """Share of the machine's CPU the hypervisor took between two times, percent."""
        return stolen_pct([s for s in samples if lo < s.t <= hi])

    # A host that takes CPU away in one third and not the other skews the p99 comparison.
    p(
        f"| CPU stolen by the host (hypervisor), first / last third | {stolen(0, args.seconds / 3):.1f} / "
        f"{stolen(2 * args.seconds / 3, args.seconds):.1f} % of the machine |"
    )
    for name, (firsts, lasts, a, b) in thirds.items():
        p(
            f"| `{name}` p99 per {SAMPLE_S:.0f} s interval, first / last third | median {a:.1f} / {b:.1f} ms "
            f"(ratio {b / a if a else float('nan'):.2f}); range {min(firsts):.1f}-{max(firsts):.1f} / {min(lasts):.1f}-{max(lasts):.1f} ms |"
        )
    p(
        f"| daemon RSS | {min(rss):.0f}-{max(rss):.0f} MiB; peak before t={ref.t:.0f} s {peak_before:.1f}, "
        f"after {peak_after:.1f} ({growth:+.1f} %); at the end {rss[-1]:.1f}; after Stop {rss_final:.1f} |"
    )
    failed = [w for w, ok in checks if not ok]
    p(f"| checks | {len(checks) - len(failed)} of {len(checks)} passed |")
    for w in failed:
        p(f"| FAILED | {w} |")
    p(f"| verdict | {'PASS' if not failed else 'FAIL'} |")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
