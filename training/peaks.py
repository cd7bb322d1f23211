"""The peak rule that turns a detection model's score map into events, exactly as the daemon
applies it (src/pipeline/detect/peaks.rs); the shipped package's test_events.json pins that
both agree.

Candidates are pixels with a score >= threshold that are >= all their 8 neighbours
(neighbours outside the image ignored). They are taken strongest first (ties: row-major
index), and each is accepted if its Euclidean distance to every peak accepted before it is
>= min_distance.
"""

from __future__ import annotations

import numpy as np


def find_peaks(score: np.ndarray, threshold: float, min_distance: float, max_peaks: int = 256):
    """[(y, x, score)] of the 2-D `score` map, in acceptance order."""
    from scipy.ndimage import maximum_filter

    s = np.asarray(score, np.float32)
    neighbourhood_max = maximum_filter(s, size=3, mode="constant", cval=-np.inf)
    ys, xs = np.nonzero((s >= threshold) & (s >= neighbourhood_max))
    vals = s[ys, xs]
    order = np.lexsort((ys * s.shape[1] + xs, -vals))  # score descending, then row-major
    d2 = float(min_distance) ** 2
    out: list[tuple[int, int, float]] = []
    for i in order:
        if len(out) >= max_peaks:
            break
        y, x = int(ys[i]), int(xs[i])
        if all((y - py) ** 2 + (x - px) ** 2 >= d2 for py, px, _ in out):
            out.append((y, x, float(vals[i])))
    return out
