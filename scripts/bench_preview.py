#!/usr/bin/env python3
"""What watching costs the pipeline: the classical topology (simulated 512x512 at 100 fps ->
Gaussian) with no preview panel, then with N panels that take frames as fast as they can
(each sends `ready` as soon as a frame arrives, like a browser that draws instantly).

Rounds alternate (none, watched, none, watched, ...). Each round restarts the acquisition so
that GetStatus' latency percentiles cover that round only. Prints a Markdown table.

    cargo build --release --bin scopepilot
    .venv/bin/python scripts/bench_preview.py --seconds 20 --rounds 2 --panels 3 [--max-fps 30]

Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import websocket

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "python"))
import conftest  # noqa: E402  (generates the gRPC stubs)
from scopepilot.v1 import acquisition_pb2, acquisition_pb2_grpc  # noqa: E402

CONFIG = """
[api]
listen = "127.0.0.1:0"
[http]
listen = "127.0.0.1:0"
preview_max_fps = {max_fps}
[acquisition]
autostart = false
[source.simulated]
width = 512
height = 512
frame_rate_hz = 100.0
[[stages]]
name = "gaussian"
kind = "gaussian"
input = "raw"
queue = { capacity = 8, policy = "drop_oldest" }
params = { sigma = 1.5 }
"""

READY = re.compile(r"listening grpc=(\S+) http=(\S+)")


class Panel(threading.Thread):
    """A WebSocket preview client that asks for the next frame as soon as one arrives."""

    def __init__(self, url: str, stream: str):
        super().__init__(daemon=True)
        self.ws = websocket.create_connection(url, timeout=10, http_no_proxy=["127.0.0.1"])
        self.ws.send(json.dumps({"type": "config", "stream": stream}))
        self.frames = 0
        self.stop = threading.Event()

    def run(self) -> None:
        self.ws.send(json.dumps({"type": "ready"}))
        while not self.stop.is_set():
            try:
                self.ws.recv_data()
            except Exception:
                return
            self.frames += 1
            try:
                self.ws.send(json.dumps({"type": "ready"}))
            except Exception:
                return

    def close(self) -> None:
        self.stop.set()
        self.ws.close()


def run_round(acq, http: str, seconds: float, panels: int) -> dict:
    acq.Start(acquisition_pb2.StartRequest(source="simulated"))
    time.sleep(2)  # warm-up, excluded: restart so that the percentiles cover the round only
    acq.Stop(acquisition_pb2.StopRequest())
    acq.Start(acquisition_pb2.StartRequest(source="simulated"))
    clients = []
    streams = ["raw", "gaussian"]
    for i in range(panels):
        p = Panel(f"ws://{http}/ws/preview", streams[i % 2])
        p.start()
        clients.append(p)
    time.sleep(seconds)
    status = acq.GetStatus(acquisition_pb2.GetStatusRequest())
    for p in clients:
        p.close()
    acq.Stop(acquisition_pb2.StopRequest())
    g = next(s for s in status.stages if s.name == "gaussian")
    secs = status.acquisition_time_s
    return {
        "panels": panels,
        "fps_in": status.frames_acquired / secs,
        "late": status.frames_late,
        "drops": status.frames_dropped_ring + sum(s.frames_dropped for s in status.stages),
        "p50_ms": g.latency_p50_us / 1000,
        "p99_ms": g.latency_p99_us / 1000,
        "preview_fps": [p.frames / seconds for p in clients],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--panels", type=int, default=3)
    ap.add_argument("--max-fps", type=float, default=30, help="http.preview_max_fps")
    ap.add_argument("--bin", default=str(REPO / "target" / "release" / "scopepilot"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "bench.toml"
        cfg.write_text(CONFIG.replace("{max_fps}", str(args.max_fps)))
        proc = subprocess.Popen(
            [args.bin, "serve", "--config", str(cfg)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=tmp,
        )
        try:
            m = READY.search(proc.stdout.readline())
            assert m, "no ready line"
            grpc_addr, http = m.group(1), m.group(2)
            ch = grpc.insecure_channel(grpc_addr, options=[("grpc.enable_http_proxy", 0)])
            acq = acquisition_pb2_grpc.AcquisitionStub(ch)
            results = []
            for r in range(args.rounds):
                for panels in (0, args.panels):
                    res = run_round(acq, http, args.seconds, panels)
                    results.append(res)
                    print(f"round {r + 1}: {res}", file=sys.stderr)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print("| panels | source fps | late | drops | gaussian latency p50 / p99 (ms) | frames/s per panel |")
    print("|---|---|---|---|---|---|")
    for res in results:
        per = ", ".join(f"{f:.0f}" for f in res["preview_fps"]) or "-"
        print(
            f"| {res['panels']} | {res['fps_in']:.1f} | {res['late']} | {res['drops']} "
            f"| {res['p50_ms']:.2f} / {res['p99_ms']:.2f} | {per} |"
        )
    for panels in (0, args.panels):
        p50 = [r["p50_ms"] for r in results if r["panels"] == panels]
        print(f"median p50 with {panels} panels: {statistics.median(p50):.2f} ms", file=sys.stderr)


if __name__ == "__main__":
    main()
