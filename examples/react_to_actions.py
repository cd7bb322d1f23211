#!/usr/bin/env python3
"""React to scopepilot's actions the way acquisition software does.

Subscribes to the daemon's actions (and, for the log, its events), carries out each one
(here: prints what a real script would tell the camera or the stage), and acknowledges it so
that the daemon knows it was done.

    .venv/bin/python examples/react_to_actions.py [--address 127.0.0.1:50051] [--max-actions N]

Uses the typed client in clients/python (scopepilot_client), which generates the gRPC stubs
from proto/ on first import; needs grpcio and grpcio-tools (both in the venv made by
scripts/setup-venv.sh).
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clients" / "python"))

from scopepilot_client import Action, Scopepilot  # noqa: E402

PRINT = threading.Lock()  # events and actions arrive on two threads: one line at a time


def say(line: str) -> None:
    with PRINT:
        print(line, flush=True)


def carry_out(action: Action) -> tuple[bool, str]:
    """Do what the action asks. A real script would drive the microscope here."""
    p, phase = action.params, action.phase
    if action.dry_run:
        return True, f"dry run, nothing done ({action.name} {p})"
    if action.name == "set_frame_interval":
        who = "the daemon's own camera already runs at it" if action.executed_by_daemon \
            else "set it on the camera"
        return True, f"frame interval {p.get('interval_ms')} ms ({phase}; {who})"
    if action.name == "capture":
        return True, f"captured frames around the event -> {p.get('path', p.get('error'))}"
    if action.name == "move_stage":
        return True, f"move stage to x={p.get('x')} y={p.get('y')} (pixels)"
    return True, f"{action.name} {p} ({phase})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--address", default="127.0.0.1:50051")
    ap.add_argument("--max-actions", type=int, default=0, help="stop after N actions (0: never)")
    args = ap.parse_args()
    with Scopepilot(args.address) as sp:

        def log_events() -> None:
            try:
                for e in sp.events():
                    say(f"event  {e.kind} by {e.detector} in frame {e.frame_number} "
                        f"at ({e.x:.0f}, {e.y:.0f}) score {e.score:.2f}")
            except grpc.RpcError:
                pass  # the daemon went away or we are exiting

        threading.Thread(target=log_events, daemon=True).start()
        done = 0
        actions = sp.actions()
        for action in actions:
            ok, what = carry_out(action)
            say(f"action {action.id} from rule {action.rule!r}: {what}")
            sp.acknowledge(action, ok, what)
            done += 1
            if args.max_actions and done >= args.max_actions:
                actions.cancel()
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
