#!/usr/bin/env python3
"""Time candidate denoiser architectures, untrained, in ONNX Runtime (as the daemon runs them:
CPU execution provider, 2 intra-op threads, graph optimisation ALL) before training any.

An architecture is written `u<unshuffle>-d<depth>-b<base>-c<convs>` (see denoiser_model.Arch),
or a preset name from denoiser_model.ARCHS.

Usage:
  training/.venv/bin/python training/bench_archs.py                      # the default candidates
  training/.venv/bin/python training/bench_archs.py fast care u4-d1-b32-c2 --size 512 512
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from denoiser_model import count_params, init_params, macs_per_pixel, ort_session, parse_arch, time_run, to_onnx  # noqa: E402

DEFAULT = ["care", "fast", "u2-d1-b16-c1", "u2-d2-b16-c1", "u2-d0-b16-c4", "u4-d0-b32-c4", "u4-d1-b16-c2",
           "u4-d1-b32-c2", "u4-d2-b16-c2"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("archs", nargs="*", default=DEFAULT)
    ap.add_argument("--size", type=int, nargs=2, default=(512, 512), metavar=("H", "W"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=25)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    h, w = args.size
    x = (32979 + 0.495 * rng.poisson(500, size=(1, 1, h, w))).astype(np.float32)
    print(f"{'arch':16s} {'params':>8s} {'MAC/px':>7s} {'radius':>6s} {'mult':>4s} "
          f"{'median ms':>9s} {'min ms':>7s}  ({h}x{w}, {args.threads} threads)")
    for spec in args.archs:
        arch = parse_arch(spec)
        params = init_params(arch, 0)
        sess = ort_session(to_onnx(params, arch).SerializeToString(), args.threads)
        med, mn = time_run(lambda a: sess.run(None, {"image": a}), x, reps=args.reps)
        print(f"{spec:16s} {count_params(params):8d} {macs_per_pixel(arch):7.0f} {arch.receptive_radius():6d} "
              f"{arch.multiple:4d} {med * 1000:9.1f} {mn * 1000:7.1f}", flush=True)


if __name__ == "__main__":
    main()
