#!/usr/bin/env python3
"""Micro-Manager acquires, scopepilot denoises and watches, and its rules act on the camera.

Loads Micro-Manager's demo configuration (DemoCamera, 512x512, 16-bit) through pymmcore-plus,
pushes every frame into a running scopepilot daemon, and carries out the daemon's actions on
the core (see `scopepilot_client.micromanager`). With `--overexpose-after S` it raises the
exposure to 50 ms after S seconds, to show an auto-exposure rule taking it back down. At the
end it prints one JSON line: what was acquired, pushed and done.

    .venv/bin/python examples/micromanager_bridge.py --address 127.0.0.1:50051 --seconds 10

Needs a daemon acquiring from source "push" at 512x512 (see the README, "Use with
Micro-Manager"), and pymmcore-plus + mm-test-adapters (in the test venv), or a real
Micro-Manager installation (`--config your.cfg --adapters /path/to/Micro-Manager`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clients" / "python"))

from scopepilot_client import Scopepilot  # noqa: E402
from scopepilot_client.micromanager import MicroManagerBridge  # noqa: E402


def load_core(config: str | None, adapters: str | None):
    from pymmcore_plus import CMMCorePlus

    core = CMMCorePlus()
    if adapters is None:
        import mm_test_adapters

        adapters = mm_test_adapters.device_adapter_path()
    core.setDeviceAdapterSearchPaths([adapters])
    if config:
        core.loadSystemConfiguration(config)
    else:
        core.loadSystemConfiguration()  # Micro-Manager's demo configuration
        core.setProperty("Camera", "PixelType", "16bit")
        core.setProperty("Camera", "BitDepth", "16")
    return core


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--address", default="127.0.0.1:50051")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--exposure-ms", type=float, default=10.0)
    ap.add_argument("--interval-ms", type=float, default=20.0)
    ap.add_argument("--overexpose-after", type=float, default=None, metavar="S")
    ap.add_argument("--config", help="Micro-Manager .cfg (default: the demo configuration)")
    ap.add_argument("--adapters", help="device adapter folder (default: mm-test-adapters)")
    args = ap.parse_args()

    core = load_core(args.config, args.adapters)
    core.setExposure(args.exposure_ms)
    exposures = []
    with Scopepilot(args.address) as sp:
        bridge = MicroManagerBridge(core, sp, interval_ms=args.interval_ms)
        bridge.start()
        started = time.monotonic()
        overexposed = False
        while time.monotonic() - started < args.seconds:
            if (args.overexpose_after is not None and not overexposed
                    and time.monotonic() - started >= args.overexpose_after):
                core.setExposure(50.0)
                overexposed = True
                print("exposure raised to 50 ms", file=sys.stderr, flush=True)
            exposures.append(core.getExposure())
            time.sleep(0.1)
        summary = bridge.stop()
    c = bridge.counters
    print(json.dumps({
        "frames_acquired": c.frames_acquired,
        "frames_pushed": c.frames_pushed,
        "pushed_accepted": summary.accepted,
        "dropped_here": summary.dropped_here,
        "dropped_by_daemon": summary.dropped_by_daemon,
        "lost_no_buffer": summary.lost_no_buffer,
        "actions_applied": c.actions_applied,
        "actions_failed": c.actions_failed,
        "final_exposure_ms": core.getExposure(),
        "max_exposure_ms": max(exposures),
    }), flush=True)
    core.unloadAllDevices()
    os._exit(0)  # pymmcore can abort in interpreter teardown after unloading devices


if __name__ == "__main__":
    main()
