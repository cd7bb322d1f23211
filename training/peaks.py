"""The peak rule that turns a division score map into events. The daemon's Rust detector
implements the same rule and is tested against models/detect-divisions/test_events.json, so
evaluation, calibration and packaging all call this one function.

Rule:
  1. candidates: pixels with score >= threshold that are >= all 8 neighbours (neighbours outside
     the image are ignored);
  2. sort candidates by score descending, ties by row-major index (y * W + x) ascending;
  3. accept greedily: a candidate is accepted if its Euclidean distance to every already accepted
     peak is >= min_distance_px (compared exactly in integers: dy^2 + dx^2 >= D^2).
Events are (y, x, score) of the accepted pixels, in acceptance order.

Because acceptance goes by descending score, the events at a threshold T are exactly the events
found at any lower threshold that have score >= T (calibration uses this).
"""

from __future__ import annotations

import numpy as np


def find_peaks(score: np.ndarray, threshold: float, min_distance_px: int) -> list[tuple[int, int, float]]:
    """score: 2D float32 map. -> [(y, x, score), ...] in acceptance order."""
    from scipy.ndimage import maximum_filter

    s = np.asarray(score, dtype=np.float32)
    assert s.ndim == 2
    nbr_max = maximum_filter(s, size=3, mode="constant", cval=-np.inf)  # includes the pixel itself
    cand = np.flatnonzero((s >= np.float32(threshold)) & (s >= nbr_max))
    vals = s.ravel()[cand]
    order = np.lexsort((cand, -vals))  # last key first: score descending, then index ascending
    w = s.shape[1]
    d2 = int(min_distance_px) ** 2
    acc_y: list[int] = []
    acc_x: list[int] = []
    out = []
    for k in order:
        i = int(cand[k])
        y, x = divmod(i, w)
        if acc_y:
            dy = np.asarray(acc_y) - y
            dx = np.asarray(acc_x) - x
            if np.any(dy * dy + dx * dx < d2):
                continue
        acc_y.append(y)
        acc_x.append(x)
        out.append((y, x, float(vals[k])))
    return out
