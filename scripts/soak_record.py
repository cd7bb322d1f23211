#!/usr/bin/env python3
"""Recording soak: the real daemon records a simulated 512x512 u16 camera at 100 fps for a
bounded time, uncompressed; the report says whether any frame was lost and whether memory
stayed flat.

It starts the release binary (``target/release/scopepilot``, or ``$SCOPEPILOT_BIN``) with the
config below, starts a recording of the ``raw`` stream over gRPC, samples ``GetStatus`` and the
daemon's resident memory (``/proc/<pid>/status`` VmRSS) every 10 s, stops the recording, and
then reads the store back with zarr-python: the time axis must hold every frame the recording
saw, with consecutive frame numbers. The store is deleted afterwards (it is ~31 GB for 10 min).

    ./scripts/setup-venv.sh && cargo build --release
    .venv/bin/python scripts/soak_record.py --seconds 600 [--workdir DIR]

Prints a Markdown report (for docs/benchmarks.md); exits 1 if a frame was lost or not recorded.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "python"))
os.environ.setdefault("SCOPEPILOT_BIN", str(REPO / "target" / "release" / "scopepilot"))

import numpy as np  # noqa: E402
import zarr  # noqa: E402
from conftest import Daemon  # noqa: E402  (also generates the gRPC stubs)
from scopepilot.v1 import acquisition_pb2 as acq_pb2  # noqa: E402
from scopepilot.v1 import acquisition_pb2_grpc as acq_grpc  # noqa: E402
from scopepilot.v1 import recording_pb2 as rec_pb2  # noqa: E402
from scopepilot.v1 import recording_pb2_grpc as rec_grpc  # noqa: E402

CONFIG = """
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
compression = "none"
frames_per_chunk = 1

[log]
filter = "warn"
"""

SAMPLE_S = 10.0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--workdir", type=Path, default=None, help="default: a new temp dir")
    args = ap.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="scopepilot-soak-", dir=args.workdir))
    daemon = Daemon(CONFIG, workdir)
    try:
        ch = daemon.channel()
        acq = acq_grpc.AcquisitionStub(ch)
        rec = rec_grpc.RecordingStub(ch)
        time.sleep(2.0)  # let the source settle
        before = acq.GetStatus(acq_pb2.GetStatusRequest(), timeout=10)
        rec.StartRecording(rec_pb2.StartRecordingRequest(name="soak", streams=["raw"]), timeout=10)
        t0 = time.monotonic()
        samples = []
        while (elapsed := time.monotonic() - t0) < args.seconds:
            time.sleep(min(SAMPLE_S, max(0.0, args.seconds - elapsed)))
            st = acq.GetStatus(acq_pb2.GetStatusRequest(), timeout=10)
            samples.append(
                (
                    time.monotonic() - t0,
                    rss_mib(daemon.proc.pid),
                    st.recording.frames_written,
                    st.recording.frames_not_recorded,
                    st.recording.queue_bytes / (1 << 20),
                    st.frames_acquired,
                    st.frames_dropped_ring + st.frames_lost_no_buffer,
                    st.frames_late,
                )
            )
            print(
                "t={:6.0f}s rss={:7.1f} MiB written={} not_recorded={} queue={:.1f} MiB "
                "acquired={} lost={} late={}".format(*samples[-1]),
                file=sys.stderr,
            )
        final = rec.StopRecording(rec_pb2.StopRecordingRequest(), timeout=60).status
        after = acq.GetStatus(acq_pb2.GetStatusRequest(), timeout=10)
    finally:
        daemon.stop()

    store = zarr.open_group(str(workdir / "recordings" / "soak.zarr"), mode="r")
    t_len = store["raw"]["0"].shape[0]
    numbers = store["raw"]["frame_number"][:]
    gaps = int(np.count_nonzero(np.diff(numbers.astype(np.int64)) != 1))
    first_last_ok = bool(
        np.any(store["raw"]["0"][0] != 0) and np.any(store["raw"]["0"][t_len - 1] != 0)
    )
    shutil.rmtree(workdir, ignore_errors=True)

    rss = [s[1] for s in samples]
    queue_max = max(s[4] for s in samples)
    # Frame pools fill on demand up to their configured size (camera pool: ring + 16 frames;
    # recording: 32 reusable buffers), so memory climbs in steps at first. Flat means: no
    # growth over the second half of the run.
    half = next((s[1] for s in samples if s[0] >= args.seconds / 2), rss[0])
    growth = (rss[-1] - half) / half * 100
    lost = (after.frames_dropped_ring + after.frames_lost_no_buffer) - (
        before.frames_dropped_ring + before.frames_lost_no_buffer
    )
    rate = final.frames_written / final.elapsed_s
    ok = (
        final.frames_not_recorded == 0
        and final.state == rec_pb2.RECORDING_STATE_STOPPED
        and t_len == final.frames_written
        and gaps == 0
        and lost == 0
        and first_last_ok
    )
    print(f"| soak | {args.seconds:.0f} s, 512x512 u16 @ 100 fps, raw uncompressed |")
    print("|---|---|")
    print(f"| frames recorded (store's t axis) | {t_len} ({rate:.2f} frames/s) |")
    print(f"| frames not recorded | {final.frames_not_recorded} |")
    print(f"| frame-number gaps in the store | {gaps} |")
    print(f"| frames lost before the recording (ring, pool) | {lost} |")
    print(f"| frames late on the camera schedule | {after.frames_late - before.frames_late} |")
    print(
        f"| throughput | {final.throughput_bytes_per_s / (1 << 20):.1f} MiB/s, "
        f"{final.bytes_written / (1 << 30):.1f} GiB |"
    )
    print(f"| recording queue, max sampled | {queue_max:.1f} MiB of {final.queue_budget_bytes >> 20} MiB |")
    print(
        f"| daemon RSS | {min(rss):.0f}-{max(rss):.0f} MiB; at half time {half:.1f}, at the end "
        f"{rss[-1]:.1f} ({growth:+.1f} % over the second half) |"
    )
    print(f"| verdict | {'PASS' if ok else 'FAIL'} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
