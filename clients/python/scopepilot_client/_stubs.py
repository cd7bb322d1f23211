"""The gRPC stubs, generated from the repository's ``proto/`` on first import.

They are written to ``_generated/`` next to this file (gitignored) and regenerated whenever a
``.proto`` file is newer than them, so they always match the daemon built from the same tree.
``SCOPEPILOT_PROTO`` points at another ``proto/`` directory.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

PROTO_DIR = Path(
    os.environ.get("SCOPEPILOT_PROTO", Path(__file__).resolve().parents[3] / "proto")
)
GENERATED = Path(__file__).resolve().parent / "_generated"
SERVICES = ["acquisition", "frames", "models", "recording", "events", "rules"]


def _protos() -> list[Path]:
    return [PROTO_DIR / "scopepilot" / "v1" / f"{s}.proto" for s in SERVICES]


def _stale() -> bool:
    stamp = GENERATED / ".stamp"
    if not stamp.exists():
        return True
    built = stamp.stat().st_mtime
    return any(p.stat().st_mtime > built for p in _protos())


def _generate() -> None:
    from grpc_tools import protoc

    missing = [p for p in _protos() if not p.exists()]
    if missing:
        raise ImportError(f"scopepilot protos not found: {missing} (set SCOPEPILOT_PROTO)")
    GENERATED.mkdir(parents=True, exist_ok=True)
    well_known = Path(protoc.__file__).resolve().parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{well_known}",
        f"--python_out={GENERATED}",
        f"--grpc_python_out={GENERATED}",
        *[str(p.relative_to(PROTO_DIR)) for p in _protos()],
    ]
    if protoc.main(args) != 0:
        raise ImportError(f"grpc_tools.protoc failed: {' '.join(args)}")
    (GENERATED / ".stamp").touch()


def load(service: str):
    """``(messages, stubs)`` modules of one service, e.g. ``load("events")``."""
    if _stale():
        _generate()
    if str(GENERATED) not in sys.path:
        sys.path.insert(0, str(GENERATED))
    return (
        importlib.import_module(f"scopepilot.v1.{service}_pb2"),
        importlib.import_module(f"scopepilot.v1.{service}_pb2_grpc"),
    )
