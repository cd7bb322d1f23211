#!/usr/bin/env python3
"""React to scopepilot's actions the way acquisition software does.

Subscribes to the daemon's actions (and, for the log, its events), carries out each one
(here: prints what a real script would tell the camera or the stage), and acknowledges it so
that the daemon knows it was done.

    .venv/bin/python examples/react_to_actions.py [--address 127.0.0.1:50051] [--max-actions N]

Needs grpcio and grpcio-tools (both in the venv made by scripts/setup-venv.sh); the Python
stubs are generated from proto/ into a temporary directory at start.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from pathlib import Path

import grpc
from grpc_tools import protoc

PROTO = Path(__file__).resolve().parent.parent / "proto"
PRINT = threading.Lock()  # events and actions arrive on two threads: one line at a time


def say(line: str) -> None:
    with PRINT:
        print(line, flush=True)


def load_stubs(out: Path):
    """Generate and import the scopepilot stubs (events only: that is all this script uses)."""
    well_known = Path(protoc.__file__).resolve().parent / "_proto"
    args = ["protoc", f"-I{PROTO}", f"-I{well_known}", f"--python_out={out}",
            f"--grpc_python_out={out}", "scopepilot/v1/events.proto"]
    if protoc.main(args) != 0:
        sys.exit("could not generate the gRPC stubs from proto/")
    sys.path.insert(0, str(out))
    from scopepilot.v1 import events_pb2, events_pb2_grpc  # noqa: E402

    return events_pb2, events_pb2_grpc


def carry_out(action, pb) -> tuple[bool, str]:
    """Do what the action asks. A real script would drive the microscope here."""
    p = dict(action.params)
    phase = "release" if action.phase == pb.ACTION_PHASE_RELEASE else "trigger"
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
    with tempfile.TemporaryDirectory() as tmp:
        pb, rpc = load_stubs(Path(tmp))
        channel = grpc.insecure_channel(args.address, options=[("grpc.enable_http_proxy", 0)])
        events = rpc.EventsStub(channel)

        def log_events() -> None:
            try:
                for e in events.SubscribeEvents(pb.SubscribeEventsRequest()):
                    say(f"event  {e.kind} by {e.detector} in frame {e.frame_number} "
                        f"at ({e.x:.0f}, {e.y:.0f}) score {e.score:.2f}")
            except grpc.RpcError:
                pass  # the daemon went away or we are exiting

        threading.Thread(target=log_events, daemon=True).start()
        done = 0
        for action in events.SubscribeActions(pb.SubscribeActionsRequest()):
            ok, what = carry_out(action, pb)
            say(f"action {action.id} from rule {action.rule!r}: {what}")
            events.AcknowledgeAction(pb.AcknowledgeActionRequest(
                action_id=action.id, success=ok, message=what))
            done += 1
            if args.max_actions and done >= args.max_actions:
                break
        channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
