#!/usr/bin/env python3
"""Many gRPC clients on one stream: does the camera keep its pace, and where does the CPU go?

Starts the release daemon (``target/release/scopepilot`` or ``$SCOPEPILOT_BIN``) with the
soak's simulated 512x512 @ 100 fps camera and no stages or recording, lets ``--clients``
subscribers (threads of this process, one gRPC connection each, as in ``scripts/soak.py``)
read full ``raw`` frames as fast as they can for ``--seconds``, and reports:

* the camera's frame rate over that time (``frames_acquired`` from ``/api/status``);
* the CPU of each kind of daemon thread (``/proc/<pid>/task/*/stat``) and of this process;
* frames received per client, and frames they missed (their counted drops).

``--camera-nice N`` sets the camera thread's niceness from outside after start (``renice``
needs root to go below its current value), for an A/B of the camera's priority in one build.

    cargo build --release
    .venv/bin/python scripts/fanout_load.py --clients 50 --seconds 15
    .venv/bin/python scripts/fanout_load.py --clients 50 --seconds 15 --camera-nice 0
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import soak  # noqa: E402  (sets SCOPEPILOT_BIN, puts tests/python on the path)
from conftest import Daemon  # noqa: E402


def thread_cpu(pid: int) -> dict[str, tuple[str, float]]:
    """{tid: (thread name, CPU seconds so far)} of every thread of `pid`."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except FileNotFoundError:
            continue  # the thread ended
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[tid] = (name, (int(fields[11]) + int(fields[12])) / tick)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--camera-nice", type=int, default=None, help="renice the camera thread to this")
    args = ap.parse_args()

    config = soak.BASE_CONFIG.format(compression="none", zstd_level=1, frames_per_chunk=1)
    daemon = Daemon(config, Path(tempfile.mkdtemp(prefix="scopepilot-fanout-")))
    pid = daemon.proc.pid

    def acquired() -> int:
        with urllib.request.urlopen(f"{daemon.http_url}/api/status") as r:
            return json.load(r)["frames_acquired"]

    try:
        time.sleep(3)  # the camera settles
        for tid, (name, _) in thread_cpu(pid).items():
            if name.startswith("camera") and args.camera_nice is not None:
                os.setpriority(os.PRIO_PROCESS, int(tid), args.camera_nice)
            if name.startswith("camera"):
                print(f"camera thread {tid}: niceness {os.getpriority(os.PRIO_PROCESS, int(tid))}")
        cpu0, own0, t0, n0 = thread_cpu(pid), sum(os.times()[:2]), time.monotonic(), acquired()
        clients = [soak.Subscriber(daemon.address, f"client {i}", "raw") for i in range(args.clients)]
        for c in clients:
            c.start()
        time.sleep(args.seconds)
        cpu1, own1, t1, n1 = thread_cpu(pid), sum(os.times()[:2]), time.monotonic(), acquired()
        results = [c.stop() for c in clients]
    finally:
        daemon.stop()

    dt = t1 - t0
    by_kind: collections.Counter[str] = collections.Counter()
    for tid, (name, cpu) in cpu1.items():
        by_kind[name.rstrip("0123456789-")] += (cpu - cpu0.get(tid, (name, 0.0))[1]) / dt
    received = sum(r.received for r in results)
    errors = [r.error for r in results if r.error]
    print(f"| {args.clients} clients on raw, {dt:.0f} s | value |")
    print("| --- | --- |")
    print(f"| camera | {(n1 - n0) / dt:.1f} frames/s (100 asked) |")
    print(f"| frames received per client | {received / dt / max(args.clients, 1):.1f}/s "
          f"(missed {sum(r.missing for r in results)} in all, each counted as its drops) |")
    print(f"| CPU of the clients (this process) | {100 * (own1 - own0) / dt:.0f} % |")
    for kind, share in by_kind.most_common():
        if share >= 0.005:
            print(f"| CPU of daemon threads `{kind}` | {100 * share:.0f} % |")
    if errors:
        print(f"client errors: {errors[:3]}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
