"""The README's worked example (examples/react_to_actions.py) against a real daemon: the
simulated camera's divisions trigger a rule, the script receives the actions, carries them out
and acknowledges them, and the daemon counts the acknowledgements."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from scopepilot.v1 import acquisition_pb2, acquisition_pb2_grpc

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "react_to_actions.py"

CONFIG = """
[api]
listen = "127.0.0.1:0"
[acquisition]
autostart = true
[source.simulated]
width = 128
height = 128
frame_rate_hz = 20.0
seed = 5
[source.simulated.scene]
initial_nuclei = 8
division_interval_s = 3.0
mitosis_duration_s = 0.5
[recording]
root = "recordings"

[[rules]]
name = "follow-division"
when = { detector = "simulator", cooldown_s = 2 }
actions = [
  { type = "set_interval", speedup = 2, duration_s = 0.5 },
  { type = "emit", name = "move_stage", params = { x = "{x}", y = "{y}" } },
]
"""


def test_the_worked_example_reacts_to_actions_and_acknowledges_them(start_daemon):
    d = start_daemon(CONFIG)
    run = subprocess.run(
        [sys.executable, str(EXAMPLE), "--address", d.address, "--max-actions", "3"],
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 0, run.stderr
    lines = [l for l in run.stdout.splitlines() if l.startswith("action ")]
    assert len(lines) == 3, run.stdout
    assert any("frame interval" in l for l in lines), run.stdout
    assert any("move stage to x=" in l for l in lines), run.stdout
    acq = acquisition_pb2_grpc.AcquisitionStub(d.channel())
    deadline = time.monotonic() + 10
    while True:
        ev = acq.GetStatus(acquisition_pb2.GetStatusRequest()).events
        if ev.actions_acknowledged >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert ev.actions_acknowledged >= 3, ev
    assert ev.actions_failed == 0
    assert d.alive()
