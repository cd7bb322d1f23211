#!/usr/bin/env python3
"""Validate the bioimage.io model packages in models/ with the official `bioimageio.spec`
(format checks, file hashes, test-tensor shapes) and, if `bioimageio.core` is installed, run its
`test_model` (loads model.onnx in ONNX Runtime, feeds test_input.npy, compares to test_output.npy,
and tries other valid input sizes).

bioimageio.spec / .core are NOT in training/requirements.txt (they pull in pydantic, httpx,
rich, xarray, ...): install them into throwaway venvs. Versions used (Nov 2026):
- the newest spec alone (format checks against model format 0.5.14):
    python3.11 -m venv /tmp/bioimageio-spec-venv
    /tmp/bioimageio-spec-venv/bin/pip install bioimageio.spec==0.5.14.3
    /tmp/bioimageio-spec-venv/bin/python training/validate_rdf.py
- bioimageio.core 0.11.0 (no torch needed for ONNX weights) pins bioimageio.spec==0.5.12.0,
  which breaks with pydantic >= 2.13 (a serializer error on every file reference): pin pydantic.
    python3.11 -m venv /tmp/bioimageio-venv
    /tmp/bioimageio-venv/bin/pip install bioimageio.core==0.11.0 pydantic==2.12.5 onnxruntime==1.31.1 onnx==1.23.2
    /tmp/bioimageio-venv/bin/python training/validate_rdf.py
Arguments: package folders or rdf.yaml files (default: every models/*/rdf.yaml); --no-core to
skip test_model. Exit status 0 only if every package passes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("packages", nargs="*", type=Path, help="package folders or rdf.yaml files")
    ap.add_argument("--no-core", action="store_true", help="skip bioimageio.core test_model")
    args = ap.parse_args()
    paths = args.packages or sorted(p.parent for p in (ROOT / "models").glob("*/rdf.yaml"))
    paths = [(p / "rdf.yaml" if p.is_dir() else p).resolve() for p in paths]

    import bioimageio.spec as spec

    try:
        import bioimageio.core as core
    except ImportError:
        core = None
    print(f"bioimageio.spec {spec.__version__}"
          + (f", bioimageio.core {core.__version__}" if core else ", bioimageio.core not installed"))

    ok = True
    for rdf in paths:
        print(f"\n=== {rdf.relative_to(ROOT) if rdf.resolve().is_relative_to(ROOT) else rdf}")
        summary = spec.load_description(rdf, format_version="discover", perform_io_checks=True).validation_summary
        print(summary.format())
        ok &= summary.status in ("passed", "valid-format")
        if core is not None and not args.no_core:
            s = core.test_model(rdf, weight_format="onnx", devices=["cpu"])
            print(s.format())
            ok &= s.status == "passed"
    print("\nALL PASSED" if ok else "\nFAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
