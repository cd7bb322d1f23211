"""Write a denoiser as a bioimage.io model package (format 0.5) that the daemon loads directly.

A package folder (models/<name>/) holds:
  model.onnx        the network, raw ADU in -> denoised ADU out (denoiser_model.to_onnx)
  rdf.yaml          bioimage.io model description 0.5.4; `config.scopepilot` carries what the
                    daemon needs to tile the model (size multiple, halo, preferred tile) and
                    documents the camera, architecture and training
  README.md         short documentation (the rdf's `documentation`)
  test_input.npy    float32 (1, 1, 128, 128): a simulated held-out mahotas frame in raw ADU
  test_output.npy   ONNX Runtime's output for it
  sample_input.png, sample_output.png   the same two as 16-bit PNGs (ADU, rounded), the
                    human-viewable `sample_tensor`s bioimage.io asks for (it cannot read .npy there)

Used by train_denoiser.py (after training, or --export-only from a checkpoint).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

import denoise_data as dd
from denoiser_model import CAMERA, Arch, count_params, macs_per_pixel, ort_session, to_onnx

FORMAT_VERSION = "0.5.4"
OPSET = 17
PREFERRED_TILE = 256
TEST_SIZE = 128
INPUT_ID, OUTPUT_ID = "image", "denoised"

LICENSE = "Apache-2.0"
AUTHORS = [{"name": "scopepilot contributors"}]
CITE_CARE = {"text": "Weigert et al., Content-aware image restoration: pushing the limits of fluorescence "
                     "microscopy, Nature Methods 15, 1090-1097 (2018)", "doi": "10.1038/s41592-018-0216-7"}
CITE_UNET = {"text": "Ronneberger, Fischer, Brox, U-Net: Convolutional Networks for Biomedical Image "
                     "Segmentation, MICCAI 2015", "doi": "10.1007/978-3-319-24574-4_28"}
CITE_SHUFFLE = {"text": "Shi et al., Real-Time Single Image and Video Super-Resolution Using an Efficient "
                        "Sub-Pixel Convolutional Neural Network (pixel shuffle), CVPR 2016",
                "doi": "10.1109/CVPR.2016.207"}
CITE_GAT = {"text": "Makitalo and Foi, Optimal inversion of the generalized Anscombe transformation for "
                    "Poisson-Gaussian noise, IEEE Trans. Image Process. 22, 91-103 (2013)",
            "doi": "10.1109/TIP.2012.2202675"}
CITE_MAHOTAS = {"text": "Training data: nuclear.png from the mahotas 1.4.19 package (MIT); Coelho, Mahotas: Open "
                        "source software for scriptable computer vision, J. Open Research Software 1, e3 (2013)",
                "doi": "10.5334/jors.ac"}
CITE_CTC = {"text": "Evaluation only (not in the weights): Cell Tracking Challenge Fluo-N2DL-HeLa raw frames "
                    "(Mitocheck consortium); Ulman et al., An objective comparison of cell-tracking "
                    "algorithms, Nature Methods 14, 1141-1152 (2017)", "doi": "10.1038/nmeth.4473"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_input(size: int = TEST_SIZE) -> np.ndarray:
    """A simulated held-out mahotas frame (camera simulation, white noise, nominal dose), uint16
    ADU values cast to float32, (1, 1, size, size). Fixed seed: the same bytes every export."""
    clean = dd.test_clean_images()["mahotas (held-out columns)"]  # 512 x 160 (e-)
    y0 = 296 if size <= 216 else 0  # a crop with several nuclei
    crop = clean[y0 : y0 + size, :size]
    if crop.shape != (size, size):
        crop = np.pad(crop, ((0, size - crop.shape[0]), (0, size - crop.shape[1])), mode="reflect")
    return dd.camera(crop, np.random.default_rng(20261)).reshape(1, 1, size, size)


def save_png16(path: Path, adu: np.ndarray) -> None:
    """A 2D ADU image as a 16-bit greyscale PNG (rounded, clipped to 0-65535)."""
    from PIL import Image

    a = np.clip(np.rint(adu), 0, 65535).astype(np.uint16)
    Image.fromarray(a).save(path, optimize=True)


def description(arch: Arch) -> str:
    if arch.unshuffle > 1:
        return ("Real-time denoiser for live 16-bit widefield fluorescence frames of nuclei: a small U-Net "
                f"working on {arch.unshuffle}x{arch.unshuffle} pixel-unshuffled frames (~"
                f"{macs_per_pixel(arch):.0f} multiply-adds per pixel). Raw camera ADU in, denoised ADU out: "
                "camera normalisation and variance stabilisation are inside the graph.")
    return ("CARE-style U-Net denoiser for live 16-bit widefield fluorescence frames of nuclei. Raw camera "
            "ADU in, denoised ADU out: camera normalisation and variance stabilisation are inside the graph.")


def config(arch: Arch, n_params: int, training: dict) -> dict:
    return {
        "preferred_tile": PREFERRED_TILE,
        "size_multiple": arch.multiple,
        "halo": arch.halo(),
        "receptive_radius": arch.receptive_radius(),
        "grid_aligned_tiles": True,
        "input_units": "raw camera counts (ADU): the uint16 pixel values as float32",
        "output_units": "ADU (same offset and scale as the input)",
        "camera": dict(CAMERA),
        "architecture": {
            "kind": arch.kind,
            "unshuffle": arch.unshuffle,
            "depth": arch.depth,
            "base_channels": arch.base,
            "convs_per_level": arch.convs,
            "parameters": n_params,
            "macs_per_pixel": round(macs_per_pixel(arch)),
        },
        "training": training,
    }


def rdf(name: str, arch: Arch, n_params: int, training: dict, shas: dict) -> dict:
    s, halo = arch.multiple, arch.halo()
    min_size = 2 * halo + s  # bioimage.io requires min size - 2 * halo >= 1
    space_in = [{"type": "space", "id": ax, "size": {"min": min_size, "step": s}} for ax in ("y", "x")]
    space_out = [{"type": "space", "id": ax, "size": {"tensor_id": INPUT_ID, "axis_id": ax}, "halo": halo}
                 for ax in ("y", "x")]
    cite = [CITE_CARE, CITE_UNET] + ([CITE_SHUFFLE] if arch.unshuffle > 1 else []) + [CITE_GAT, CITE_MAHOTAS, CITE_CTC]
    return {
        "format_version": FORMAT_VERSION,
        "type": "model",
        "name": name,
        "description": description(arch),
        "authors": AUTHORS,
        "cite": cite,
        "license": LICENSE,
        "documentation": "README.md",
        "tags": ["denoising", "fluorescence-light-microscopy", "widefield", "nuclei", "2d", "onnx", "care",
                 "real-time", "scopepilot"],
        "inputs": [{
            "id": INPUT_ID,
            "description": "raw camera counts (ADU): the uint16 pixel values cast to float32",
            "axes": [{"type": "batch"}, {"type": "channel", "channel_names": ["raw"]}] + space_in,
            "data": {"type": "float32"},
            "preprocessing": [{"id": "ensure_dtype", "kwargs": {"dtype": "float32"}}],
            "test_tensor": {"source": "test_input.npy", "sha256": shas["test_input.npy"]},
            "sample_tensor": {"source": "sample_input.png", "sha256": shas["sample_input.png"]},
        }],
        "outputs": [{
            "id": OUTPUT_ID,
            "description": "denoised ADU (same offset and scale as the input)",
            "axes": [{"type": "batch"}, {"type": "channel", "channel_names": ["denoised"]}] + space_out,
            "data": {"type": "float32"},
            "test_tensor": {"source": "test_output.npy", "sha256": shas["test_output.npy"]},
            "sample_tensor": {"source": "sample_output.png", "sha256": shas["sample_output.png"]},
        }],
        "weights": {"onnx": {"source": "model.onnx", "sha256": shas["model.onnx"], "opset_version": OPSET}},
        "config": {"scopepilot": config(arch, n_params, training)},
    }


def readme(name: str, arch: Arch, n_params: int, training: dict) -> str:
    s, halo = arch.multiple, arch.halo()
    body = (f"a U-Net of depth {arch.depth} with {arch.base} channels at its top level and {arch.convs} 3x3 convs "
            f"per level, on the frame pixel-unshuffled {arch.unshuffle}x{arch.unshuffle} into {arch.unshuffle ** 2} "
            "channels and pixel-shuffled back" if arch.unshuffle > 1 else
            f"a CARE-style U-Net of depth {arch.depth} with {arch.base} channels at full resolution, doubled per "
            f"level, and {arch.convs} 3x3 convs per level")
    return f"""# {name}

{description(arch)}

Written by `training/train_denoiser.py` (scopepilot); see `docs/denoising.md` in the repository for
the method, the evaluation and the limits.

## Contract

- input `{INPUT_ID}`: float32 `[N, 1, H, W]` (batch dynamic; scopepilot sends N = 1), **raw camera
  ADU** (the uint16 pixel values as float32)
- output `{OUTPUT_ID}`: float32 `[N, 1, H, W]`, denoised ADU, same offset and scale
- H and W dynamic, each a multiple of **{s}** (pad by reflection and crop otherwise)
- halo for seamless tiling: **{halo} px** per side (receptive radius {arch.receptive_radius()} px rounded up
  to the size multiple); tile origins on multiples of {s} make tiles equal to one full pass
- preferred tile: {PREFERRED_TILE} x {PREFERRED_TILE} output pixels (whole frames work too)
- camera the model is calibrated for: offset {CAMERA["offset_adu"]:g} ADU, gain {CAMERA["gain_adu_per_e"]}
  ADU/e-, read noise {CAMERA["read_noise_adu"]} ADU rms; other cameras need retraining or a remap

Inside the graph: ADU -> photo-electrons -> generalised Anscombe transform -> residual network
-> inverse transform -> ADU; no pre- or post-processing is needed. The network is {body}:
{n_params} parameters, ~{macs_per_pixel(arch):.0f} multiply-adds per pixel.

## Training

Supervised (CARE) on pairs simulated from the low-noise mahotas `nuclear.png` (MIT), training
columns 0-943 only, at 1/2 and 1/4 scale, scaled to HeLa photon levels and passed through the
calibrated camera simulation (Poisson, gain, offset, read noise, uint16; half of the pairs with
HeLa-like spatially correlated noise). {training["steps"]} Adam steps, batch {training["batch"]} of
{training["patch"]}x{training["patch"]} patches, seed {training["seed"]}, {training["train_seconds"] / 60:.1f} min on 2 CPU cores (JAX).
No Cell Tracking Challenge data is in the weights.

## Validation

`training/evaluate_denoiser.py` runs this file through ONNX Runtime on held-out data only: the
held-out columns 1008-1343 of `nuclear.png` through the camera simulation (white and HeLa-like
correlated noise, 1x and 0.3x dose; PSNR / SSIM against the clean image, after percentile
normalisation) and raw HeLa frames 16-19 (columns 768-1099) by binomial photon splitting
(Noise2Noise estimate of the error). It compares against a Gaussian blur and non-local means,
each with its parameter tuned on the evaluation set itself. Results: `docs/denoising.md`.
`test_input.npy` is a simulated held-out frame and `test_output.npy` ONNX Runtime's output for it
(`sample_input.png` / `sample_output.png`: the same as 16-bit PNGs, in ADU).

## License

{LICENSE}. Weights trained only on MIT-licensed data (mahotas).
"""


def write_package(out: Path, name: str, arch: Arch, params: dict, training: dict) -> Path:
    """Write the package into `out`; returns the model.onnx path."""
    import onnx
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    n_params = count_params(params)
    model = to_onnx(params, arch, name=name, input_name=INPUT_ID, output_name=OUTPUT_ID, opset=OPSET,
                    doc=f"scopepilot {name}: raw ADU in, denoised ADU out")
    onnx_path = out / "model.onnx"
    onnx.save(model, onnx_path)

    size = max(TEST_SIZE, 2 * arch.halo() + arch.multiple)
    size += (-size) % arch.multiple
    x = test_input(size).astype(np.float32)
    y = ort_session(onnx_path).run(None, {INPUT_ID: x})[0].astype(np.float32)
    assert y.shape == x.shape, (y.shape, x.shape)
    np.save(out / "test_input.npy", x)
    np.save(out / "test_output.npy", y)
    for fname, a in (("sample_input.png", x), ("sample_output.png", y)):
        save_png16(out / fname, a[0, 0])

    (out / "README.md").write_text(readme(name, arch, n_params, training))
    shas = {f: sha256(out / f) for f in ("model.onnx", "test_input.npy", "test_output.npy", "sample_input.png",
                                         "sample_output.png")}
    text = yaml.safe_dump(rdf(name, arch, n_params, training, shas), sort_keys=False, width=100,
                          allow_unicode=False)
    (out / "rdf.yaml").write_text(
        f"# bioimage.io model description, written by training/train_denoiser.py (do not edit by hand)\n{text}")
    old = out / "model.toml"  # replaced by rdf.yaml
    if old.exists():
        old.unlink()
    return onnx_path


def read_rdf(folder: Path) -> dict:
    import yaml

    return yaml.safe_load((folder / "rdf.yaml").read_text())
