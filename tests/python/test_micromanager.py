"""Micro-Manager end to end with the shipped config/micromanager.toml: the real Micro-Manager core (pymmcore-plus with the DemoCamera
from mm-test-adapters, 512x512 16-bit) acquires; examples/micromanager_bridge.py pushes every
frame into the daemon, which denoises them with the shipped model and watches their
brightness; an auto-exposure rule's action comes back and the bridge applies it to the core.

The example runs in its own process (pymmcore can abort at interpreter exit after unloading
devices, so it ends with os._exit)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "micromanager_bridge.py"
sys.path.insert(0, str(REPO / "clients" / "python"))

from scopepilot_client import Scopepilot  # noqa: E402

SHIPPED = REPO / "config" / "micromanager.toml"
CONFIG = SHIPPED.read_text().replace('listen = "127.0.0.1:50051"', 'listen = "127.0.0.1:0"')
assert 'listen = "127.0.0.1:0"' in CONFIG, "config/micromanager.toml changed"


def test_micro_manager_frames_are_denoised_and_a_rule_sets_the_exposure(start_daemon):
    d = start_daemon(CONFIG)
    sp = Scopepilot(d.address)
    denoised = []
    stream = sp.frames("denoised")

    def take_one() -> None:
        for frame in stream:
            denoised.append(frame)
            break

    reader = threading.Thread(target=take_one, daemon=True)
    reader.start()

    run = subprocess.run(
        [sys.executable, str(EXAMPLE), "--address", d.address, "--seconds", "8",
         "--overexpose-after", "3"],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])

    # Micro-Manager acquired; every frame is either in the daemon or counted as dropped.
    assert out["frames_acquired"] > 50, out
    assert out["frames_acquired"] == out["frames_pushed"] + out["dropped_here"], out
    assert out["pushed_accepted"] == out["frames_pushed"], out
    # The daemon's auto-exposure rule took the exposure back down on the real core.
    assert out["max_exposure_ms"] == 50.0, out
    assert out["final_exposure_ms"] == 10.0, out
    assert any(a.startswith("set_exposure: exposure 10.0 ms") for a in out["actions_applied"]), out
    assert out["actions_failed"] == [], out

    reader.join(10)
    stream.cancel()
    assert denoised, "no denoised frame came back"
    assert denoised[0].pixels.shape == (512, 512)

    def settled():
        s = sp.status()
        return s if s.events.actions_acknowledged >= 1 else None

    deadline = time.monotonic() + 10
    while not (status := settled()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status, "the daemon never counted the acknowledgement"
    assert status.frames_acquired == out["pushed_accepted"]
    assert status.frames_rejected == 0
    stages = {s.name: s for s in status.stages}
    assert stages["denoised"].frames_out > 0 and stages["denoised"].errors == 0
    assert stages["brightness"].frames_out > 0
    assert status.events.actions_failed == 0
    sp.close()
    assert d.alive()
