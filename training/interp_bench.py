#!/usr/bin/env python3
"""Time candidate interpolator architectures (untrained) in ONNX Runtime, 2 intra-op threads, as the
daemon runs them. Usage: training/.venv/bin/python training/interp_bench.py [u4-d2-b16-c2 ...] [--size 512 512]"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from denoiser_model import ort_session, time_run  # noqa: E402
from interp_model import count_params, init_params, macs_per_pixel, parse_arch, to_onnx  # noqa: E402

DEFAULT = ["u4-d2-b16-c2", "u4-d2-b24-c2", "u4-d2-b32-c2", "u4-d3-b16-c2", "u2-d2-b16-c1", "u4-d1-b32-c2"]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("archs", nargs="*", default=DEFAULT)
    ap.add_argument("--size", type=int, nargs=2, default=(512, 512))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    h, w = args.size
    x = np.empty((1, 3, h, w), np.float32)
    x[:, :2] = 33000 + rng.poisson(500, size=(1, 2, h, w))
    x[:, 2] = 0.5
    print(f"{'arch':14s} {'params':>7s} {'MAC/px':>7s} {'radius':>6s} {'mult':>4s} {'median ms':>9s} {'min ms':>7s}")
    for spec in args.archs:
        arch = parse_arch(spec)
        p = init_params(arch, 0)
        sess = ort_session(to_onnx(p, arch).SerializeToString(), args.threads)
        med, mn = time_run(lambda a: sess.run(None, {"frames": a}), x, reps=args.reps)
        print(f"{spec:14s} {count_params(p):7d} {macs_per_pixel(arch):7.0f} {arch.receptive_radius():6d} "
              f"{arch.multiple:4d} {med * 1e3:9.1f} {mn * 1e3:7.1f}", flush=True)


if __name__ == "__main__":
    main()
