"""Write the tiny ONNX models and bioimage.io model packages used by the tests (tests/data/).

They are made here, from nothing but `numpy`, `onnx` and `onnxruntime` (all in .venv), so anyone
can regenerate and check them: `.venv/bin/python scripts/make_test_models.py`. The output is
deterministic (seeded numpy, fixed timestamps): running it twice gives identical files.

- box3.onnx: input `image` float32 [1, 1, H, W] (H, W dynamic), output `smoothed`: a 3x3
  mean filter with zero padding. Its exact output is easy to compute independently.

- box3-trap.onnx (+ box3-trap.toml, written by hand): box3, except that inference fails (an
  out-of-bounds Gather, refused by ONNX Runtime at run time) when any input value is >= 50000.
  Tests use it to make inference fail on chosen frames of a stream.

- bioimageio/<name>/: bioimage.io model packages (rdf.yaml + model.onnx + README.md + test
  tensors as .npy), all single-channel 2D, axes (batch, channel=1, y, x), test tensors
  1x1x48x64. The model in each is the box3 filter above with other tensor names.

  - norm-box3-v05/  format 0.5.4, uint16 input `raw` -> ensure_dtype(float32), scale_range,
                    clip -> model -> output `smoothed` -> scale_linear, ensure_dtype(float32).
  - zmuv-box3-v04/  format 0.4.10, float32 input `input` -> zero_mean_unit_variance -> model ->
                    output `output` -> scale_mean_variance back to the raw input's mean/std.
  - plain-v05/      format 0.5.4, float32 input `image` -> ensure_dtype(float32) -> model ->
                    output `smoothed`; no other processing.

  Each package was validated with bioimageio.spec and passes bioimageio.core's `test_model`
  (see the bottom of this docstring).

Processing formulas used for the expected test outputs (the bioimage.io definitions, as
implemented by bioimageio.core). `x` is one sample's tensor; statistics are taken per sample
over the listed axes (here always y and x, i.e. the whole 2D image of the one channel):

  ensure_dtype(dtype)      x.astype(dtype)  (uint16 -> float32 is exact)
  scale_range              out = (x - p_lo) / (p_hi - p_lo + eps)
                           p_lo, p_hi = numpy percentiles min_percentile, max_percentile of x
                           with numpy's default 'linear' method: for N sorted values v[0..N-1]
                           and percentile q, r = q/100 * (N-1), i = floor(r),
                           p = v[i] + (r - i) * (v[i+1] - v[i])  (v[N-1] when i = N-1)
  clip                     out = min(max(x, min), max)
  scale_linear             out = x * gain + offset
  zero_mean_unit_variance  out = (x - mean(x)) / (std(x) + eps)
                           std = population standard deviation (ddof 0): sqrt(mean((x-mean)^2))
  scale_mean_variance      out = (x - mean(x)) / (std(x) + eps) * (std(ref) + eps) + mean(ref)
                           x = the model output, ref = the reference tensor (the *raw* input,
                           before its preprocessing), same population std, per sample.

  Statistics and arithmetic are done here in float64 on the float32 tensor and the result of
  each pipeline stage (preprocessing, model, postprocessing) is stored as float32; a float32
  implementation agrees to ~1e-6 relative. The model is run with onnxruntime.
  bioimage.io's own test (bioimageio.core.test_model) compares with rtol 1e-3 / atol 1e-3 (its
  defaults); compare with a similar relative tolerance, not bit-exactly.

  Notes for readers of these packages:
  - format 0.5: `data.type` of an input is the dtype the model gets *after* preprocessing
    (bioimageio.spec appends `ensure_dtype(data.type)` to preprocessing when it does not end
    with one), and a float32 input accepts test tensors of any numeric dtype: norm-box3-v05's
    test_input.npy is uint16 while its `data.type` is float32.
  - The package models have a dynamic batch dimension `B` (bioimageio.core also tests batch 2);
    box3.onnx keeps its fixed batch of 1.
  - bioimage.io's test runs the model on the whole test input, without halo padding/cropping.

  Checked with bioimageio.spec 0.5.14.3 (load_description: valid-format for all three; only
  warnings: no sample_tensor, which FAIR wants) and bioimageio.core 0.11.0 (needs
  bioimageio.spec 0.5.12.0 and pydantic < 2.12; onnxruntime 1.31.1): test_model passes for
  norm-box3-v05 and plain-v05 (incl. batch 1 and 2, sizes n = 0, 1, 2). For zmuv-box3-v04,
  core 0.11.0 computes all per-sample statistics at the start of preprocessing, before the
  output exists, and stops with KeyError 'output' (a core limitation for scale_mean_variance);
  with the output statistics computed just before postprocessing instead, it passes too.
"""

import hashlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = Path(__file__).resolve().parent.parent / "tests" / "data"
BIOIMAGEIO = OUT / "bioimageio"

TEST_SHAPE = (1, 1, 48, 64)  # b, c, y, x; y = 16 + 4*8 and x = 16 + 6*8 fit {min: 16, step: 8}
OPSET = 17
# Cite the BioImage Model Zoo paper (the test models themselves have no publication).
CITE_TEXT = "Ouyang et al. (2022): BioImage Model Zoo: A Community-Driven Resource for Accessible Deep Learning in BioImage Analysis"
CITE_DOI = "10.1101/2022.06.07.495102"
AUTHOR = "scopepilot developers"
TIMESTAMP = "2026-11-01T00:00:00"


def box3(input_name: str = "image", output_name: str = "smoothed", batch: int | str = 1) -> onnx.ModelProto:
    """The 3x3 mean filter; `batch` is the batch dimension (1, or a name for a dynamic one)."""
    weights = numpy_helper.from_array(np.full((1, 1, 3, 3), 1.0 / 9.0, dtype=np.float32), "w")
    conv = helper.make_node("Conv", [input_name, "w"], [output_name], pads=[1, 1, 1, 1])
    graph = helper.make_graph(
        [conv],
        "box3",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [batch, 1, "H", "W"])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [batch, 1, "H", "W"])],
        initializer=[weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="scopepilot-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


TRAP_THRESHOLD = 50000.0


def box3_trap(threshold: float = TRAP_THRESHOLD) -> onnx.ModelProto:
    """box3, but inference *fails* when any input value is >= `threshold`: the index of a
    Gather into a 2-element table becomes 5 (out of bounds), which ONNX Runtime refuses at run
    time. It lets tests fail inference on chosen frames of a stream (a real runtime error)."""
    model = box3()
    g = model.graph
    g.initializer.extend(
        [
            numpy_helper.from_array(np.array(threshold, dtype=np.float32), "trap_threshold"),
            numpy_helper.from_array(np.array(5, dtype=np.int64), "trap_five"),
            numpy_helper.from_array(np.zeros(2, dtype=np.float32), "trap_table"),
        ]
    )
    conv = g.node[0]
    conv.output[0] = "box"
    g.node.extend(
        [
            helper.make_node("ReduceMax", ["image"], ["trap_max"], keepdims=0),
            helper.make_node("GreaterOrEqual", ["trap_max", "trap_threshold"], ["trap_hit"]),
            helper.make_node("Cast", ["trap_hit"], ["trap_hit_i"], to=TensorProto.INT64),
            helper.make_node("Mul", ["trap_hit_i", "trap_five"], ["trap_index"]),
            helper.make_node("Gather", ["trap_table", "trap_index"], ["trap_zero"]),
            helper.make_node("Add", ["box", "trap_zero"], ["smoothed"]),
        ]
    )
    g.name = "box3_trap"
    onnx.checker.check_model(model)
    return model


# ---------------------------------------------------------------------------------------------
# Reference processing (see the module docstring for the formulas).

AXES_YX = (-2, -1)


def scale_range(x: np.ndarray, min_percentile: float, max_percentile: float, eps: float) -> np.ndarray:
    x = x.astype(np.float64)
    lo = np.percentile(x, min_percentile, axis=AXES_YX, keepdims=True)
    hi = np.percentile(x, max_percentile, axis=AXES_YX, keepdims=True)
    return (x - lo) / (hi - lo + eps)


def zero_mean_unit_variance(x: np.ndarray, eps: float) -> np.ndarray:
    x = x.astype(np.float64)
    mean = x.mean(axis=AXES_YX, keepdims=True)
    std = x.std(axis=AXES_YX, keepdims=True)  # ddof 0
    return (x - mean) / (std + eps)


def scale_mean_variance(x: np.ndarray, ref: np.ndarray, eps: float) -> np.ndarray:
    x, ref = x.astype(np.float64), ref.astype(np.float64)
    mean, std = x.mean(axis=AXES_YX, keepdims=True), x.std(axis=AXES_YX, keepdims=True)
    ref_mean, ref_std = ref.mean(axis=AXES_YX, keepdims=True), ref.std(axis=AXES_YX, keepdims=True)
    return (x - mean) / (std + eps) * (ref_std + eps) + ref_mean


def run_model(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in sess.get_inputs()]
    (out,) = sess.run(None, {name: x.astype(np.float32)})
    return out


# ---------------------------------------------------------------------------------------------
# Test images (deterministic).


def blobs(rng: np.random.Generator, n: int = 6) -> np.ndarray:
    """Smooth bright blobs on a gradient, shape (48, 64), values ~0..1."""
    h, w = TEST_SHAPE[2:]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = 0.1 * (xx / w) + 0.05 * (yy / h)
    for _ in range(n):
        cy, cx = rng.uniform(4, h - 4), rng.uniform(4, w - 4)
        s = rng.uniform(2.0, 5.0)
        img += rng.uniform(0.4, 1.0) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    return img


def camera_image(rng: np.random.Generator) -> np.ndarray:
    """uint16 camera-like frame: offset + blobs + noise, with two hot pixels (so clip acts)."""
    img = 500.0 + 3000.0 * blobs(rng)
    img = rng.poisson(img).astype(np.float64) + rng.normal(0.0, 5.0, img.shape)
    img[5, 7] = 60000.0
    img[40, 50] = 65535.0
    return np.clip(np.rint(img), 0, 65535).astype(np.uint16).reshape(TEST_SHAPE)


# ---------------------------------------------------------------------------------------------
# Package writing.


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_npy(path: Path, a: np.ndarray) -> str:
    np.save(path, np.ascontiguousarray(a), allow_pickle=False)
    return sha256(path)


def write_package(name: str, model: onnx.ModelProto, x: np.ndarray, y: np.ndarray, readme: str, rdf: str) -> Path:
    d = BIOIMAGEIO / name
    d.mkdir(parents=True, exist_ok=True)
    for old in d.iterdir():  # nothing stale is left behind
        old.unlink()
    onnx.save(model, d / "model.onnx")
    hashes = {
        "model_sha256": sha256(d / "model.onnx"),
        "input_sha256": save_npy(d / "test_input.npy", x),
        "output_sha256": save_npy(d / "test_output.npy", y),
        "opset": OPSET,
        "cite_text": CITE_TEXT,
        "cite_doi": CITE_DOI,
        "author": AUTHOR,
        "timestamp": TIMESTAMP,
    }
    (d / "README.md").write_text(readme)
    (d / "rdf.yaml").write_text(rdf.format(**hashes))
    for f in d.iterdir():
        assert f.stat().st_size < 40_000, f
    return d


# rdf.yaml templates (str.format: literal braces doubled). Written by hand so that no YAML
# library is needed; the packages are validated with bioimageio.spec (see the docstring).

NORM_V05 = """\
# bioimage.io model description (written by scripts/make_test_models.py; do not edit)
type: model
format_version: 0.5.4
name: norm-box3-v05
description: Test model for scopepilot - percentile normalisation, clip, 3x3 mean filter, linear rescale.
authors:
  - name: {author}
cite:
  - text: "{cite_text}"
    doi: {cite_doi}
license: Apache-2.0
documentation: README.md
tags: [test, denoising, 2d, fluorescence-light-microscopy, onnx]
timestamp: {timestamp}
inputs:
  - id: raw
    description: raw camera frame (uint16 counts)
    axes:
      - type: batch
      - type: channel
        id: channel
        channel_names: [raw]
      - type: space
        id: y
        size: {{min: 16, step: 8}}
      - type: space
        id: x
        size: {{min: 16, step: 8}}
    test_tensor:
      source: test_input.npy  # uint16, like a camera frame
      sha256: {input_sha256}
    data:
      type: float32  # what the model gets after preprocessing; any numeric input is accepted
    preprocessing:
      - id: ensure_dtype
        kwargs: {{dtype: float32}}
      - id: scale_range
        kwargs:
          axes: [y, x]
          min_percentile: 1.0
          max_percentile: 99.8
          eps: 1.0e-6
      - id: clip
        kwargs: {{min: 0.0, max: 1.0}}
      - id: ensure_dtype
        kwargs: {{dtype: float32}}
outputs:
  - id: smoothed
    description: 3x3 mean of the normalised frame, scaled by 1000 plus 5
    axes:
      - type: batch
      - type: channel
        id: channel
        channel_names: [smoothed]
      - type: space
        id: y
        size: {{tensor_id: raw, axis_id: y}}
        halo: 1
      - type: space
        id: x
        size: {{tensor_id: raw, axis_id: x}}
        halo: 1
    test_tensor:
      source: test_output.npy
      sha256: {output_sha256}
    data:
      type: float32
    postprocessing:
      - id: scale_linear
        kwargs: {{gain: 1000.0, offset: 5.0}}
      - id: ensure_dtype
        kwargs: {{dtype: float32}}
weights:
  onnx:
    source: model.onnx
    sha256: {model_sha256}
    opset_version: {opset}
"""

ZMUV_V04 = """\
# bioimage.io model description (written by scripts/make_test_models.py; do not edit)
type: model
format_version: 0.4.10
name: zmuv-box3-v04
description: Test model for scopepilot - zero-mean unit-variance input, 3x3 mean filter, output rescaled to the input's mean and std.
authors:
  - name: {author}
cite:
  - text: "{cite_text}"
    doi: {cite_doi}
license: Apache-2.0
documentation: README.md
tags: [test, denoising, 2d, fluorescence-light-microscopy, onnx]
timestamp: {timestamp}
test_inputs: [test_input.npy]
test_outputs: [test_output.npy]
inputs:
  - name: input
    description: image (float32)
    axes: bcyx
    data_type: float32
    data_range: [-.inf, .inf]
    shape:
      min: [1, 1, 16, 16]
      step: [0, 0, 8, 8]
    preprocessing:
      - name: zero_mean_unit_variance
        kwargs:
          mode: per_sample
          axes: xy
          eps: 1.0e-6
outputs:
  - name: output
    description: 3x3 mean of the input, with the input's mean and standard deviation
    axes: bcyx
    data_type: float32
    data_range: [-.inf, .inf]
    shape:
      reference_tensor: input
      scale: [1.0, 1.0, 1.0, 1.0]
      offset: [0, 0, 0, 0]
    halo: [0, 0, 1, 1]
    postprocessing:
      - name: scale_mean_variance
        kwargs:
          mode: per_sample
          reference_tensor: input
          axes: xy
          eps: 1.0e-6
weights:
  onnx:
    source: model.onnx
    sha256: {model_sha256}
    opset_version: {opset}
"""

PLAIN_V05 = """\
# bioimage.io model description (written by scripts/make_test_models.py; do not edit)
type: model
format_version: 0.5.4
name: plain-v05
description: Test model for scopepilot - a 3x3 mean filter with no pre- or postprocessing.
authors:
  - name: {author}
cite:
  - text: "{cite_text}"
    doi: {cite_doi}
license: Apache-2.0
documentation: README.md
tags: [test, denoising, 2d, onnx]
timestamp: {timestamp}
inputs:
  - id: image
    description: image (float32)
    axes:
      - type: batch
      - type: channel
        id: channel
        channel_names: [image]
      - type: space
        id: y
        size: {{min: 16, step: 8}}
      - type: space
        id: x
        size: {{min: 16, step: 8}}
    test_tensor:
      source: test_input.npy
      sha256: {input_sha256}
    data:
      type: float32
    preprocessing:
      - id: ensure_dtype
        kwargs: {{dtype: float32}}
outputs:
  - id: smoothed
    description: 3x3 mean of the input (zero padding)
    axes:
      - type: batch
      - type: channel
        id: channel
        channel_names: [smoothed]
      - type: space
        id: y
        size: {{tensor_id: image, axis_id: y}}
        halo: 1
      - type: space
        id: x
        size: {{tensor_id: image, axis_id: x}}
        halo: 1
    test_tensor:
      source: test_output.npy
      sha256: {output_sha256}
    data:
      type: float32
weights:
  onnx:
    source: model.onnx
    sha256: {model_sha256}
    opset_version: {opset}
"""


def readme(title: str, body: str) -> str:
    return (
        f"# {title}\n\n{body}\n\n"
        "A tiny test package for scopepilot's bioimage.io reader, made by "
        "`scripts/make_test_models.py` (deterministic; do not edit by hand). The model is a 3x3 "
        "mean filter with zero padding (ONNX opset 17), so its receptive-field radius, and halo, "
        "is 1 pixel. Test tensors are 1x1x48x64 (batch, channel, y, x).\n\n"
        "## Validation\n\n"
        "`test_output.npy` is what the pipeline gives for `test_input.npy`, computed in the "
        "generator with numpy (processing) and onnxruntime (model); bioimageio.core's "
        "`test_model` passes on this package.\n"
    )


def make_packages() -> list[Path]:
    rng = np.random.default_rng(20261101)
    made = []

    # 1. norm-box3-v05: uint16 -> ensure_dtype, scale_range, clip -> box3 -> scale_linear.
    model = box3("raw", "smoothed", batch="B")
    x = camera_image(rng)
    pre = np.clip(scale_range(x.astype(np.float32), 1.0, 99.8, 1e-6), 0.0, 1.0).astype(np.float32)
    y = (run_model(model, pre).astype(np.float64) * 1000.0 + 5.0).astype(np.float32)
    made.append(
        write_package(
            "norm-box3-v05",
            model,
            x,
            y,
            readme(
                "norm-box3-v05",
                "uint16 input `raw`: ensure_dtype float32, scale_range (per sample over y, x, "
                "percentiles 1 and 99.8, eps 1e-6), clip to [0, 1]; model; output `smoothed`: "
                "scale_linear (gain 1000, offset 5), ensure_dtype float32.",
            ),
            NORM_V05,
        )
    )

    # 2. zmuv-box3-v04: zero_mean_unit_variance -> box3 -> scale_mean_variance (ref = raw input).
    model = box3("input", "output", batch="B")
    x = (100.0 + 40.0 * blobs(rng) + rng.normal(0.0, 3.0, TEST_SHAPE[2:])).astype(np.float32).reshape(TEST_SHAPE)
    pre = zero_mean_unit_variance(x, 1e-6).astype(np.float32)
    out = run_model(model, pre)
    y = scale_mean_variance(out, x, 1e-6).astype(np.float32)
    made.append(
        write_package(
            "zmuv-box3-v04",
            model,
            x,
            y,
            readme(
                "zmuv-box3-v04",
                "float32 input `input`: zero_mean_unit_variance (per sample over x, y, eps 1e-6); "
                "model; output `output`: scale_mean_variance (per sample over x, y, reference "
                "tensor `input`, i.e. the raw input's mean and std, eps 1e-6).",
            ),
            ZMUV_V04,
        )
    )

    # 3. plain-v05: float32 in, box3, float32 out.
    model = box3("image", "smoothed", batch="B")
    x = (rng.uniform(0.0, 1.0, TEST_SHAPE) + blobs(rng).reshape(TEST_SHAPE)).astype(np.float32)
    y = run_model(model, x).astype(np.float32)
    made.append(
        write_package(
            "plain-v05",
            model,
            x,
            y,
            readme("plain-v05", "float32 input `image`: ensure_dtype float32; model; output `smoothed`."),
            PLAIN_V05,
        )
    )
    return made


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "box3.onnx"
    onnx.save(box3(), path)
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    path = OUT / "box3-trap.onnx"
    onnx.save(box3_trap(), path)
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    for d in make_packages():
        print(f"wrote {d}/ ({', '.join(sorted(f.name for f in d.iterdir()))})")
