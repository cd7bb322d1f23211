"""The denoiser: a small CARE-style U-Net with the camera normalisation built in.

One definition, two implementations that must agree:
- `apply(params, adu)` in JAX (training), NCHW float32, raw ADU in -> ADU out;
- `to_onnx(params)` writes the same computation as a plain ONNX graph with `onnx.helper`
  (Conv, Relu, MaxPool, Resize, Concat, Add, Sqrt, Mul, ...), so the daemon can run it with
  ONNX Runtime. `training/train_denoiser.py` checks that both give the same numbers.

Pipeline inside the model (all constants are baked in, see CAMERA / STAB below):
  e   = (adu - offset) / gain                        photo-electrons
  v   = 2 * sqrt(max(e + 3/8 + sigma_e^2, 0))        generalised Anscombe: noise std ~1 everywhere
  z   = (v - STAB_MEAN) / STAB_SCALE                 roughly zero-mean, unit-ish range
  z'  = z + unet(z)                                  residual U-Net
  v'  = max(z' * STAB_SCALE + STAB_MEAN, 0)
  e'  = (v' / 2)^2 - 3/8 - sigma_e^2                 algebraic inverse; the loss is taken on e',
  adu'= offset + gain * e'                           so the network learns an unbiased output
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

# Camera calibration the model is built for (the HeLa photon-transfer fit; the daemon's
# simulated camera uses the same numbers: src/source/simulated/camera_model.rs).
CAMERA = {"offset_adu": 32979.0, "gain_adu_per_e": 0.495, "read_noise_adu": 5.0}
SIGMA_E2 = (CAMERA["read_noise_adu"] / CAMERA["gain_adu_per_e"]) ** 2  # read noise^2 in e-^2
STAB_MEAN = 30.0  # ~ GAT value of the 140 e- background
STAB_SCALE = 30.0


@dataclass(frozen=True)
class Arch:
    depth: int = 2  # number of 2x2 poolings; spatial size must be divisible by 2**depth
    base: int = 16  # channels at full resolution, doubled per level
    convs: int = 2  # 3x3 convs per level (encoder and decoder)
    kernel: int = 3

    @property
    def multiple(self) -> int:
        return 2**self.depth

    def receptive_radius(self) -> int:
        """Half-width of the receptive field in input pixels (exact for this topology)."""
        r = 0
        k = self.kernel // 2
        # encoder levels 0..depth-1, then pool; bottleneck at level depth; decoder back up.
        for level in range(self.depth):
            r += self.convs * k * 2**level  # convs at this level
            r += 2**level  # 2x2 pool, stride 2 (one extra input pixel at this scale)
        r += self.convs * k * 2**self.depth  # bottleneck
        for level in reversed(range(self.depth)):
            r += 2 ** (level + 1) - 2**level  # nearest upsample: up to one coarse pixel
            r += self.convs * k * 2**level
        return r


def layer_specs(arch: Arch) -> list[tuple[str, int, int, int]]:
    """(name, in_channels, out_channels, kernel) for every conv, in execution order."""
    specs = []
    c_in = 1
    for level in range(arch.depth + 1):
        c = arch.base * 2**level
        for i in range(arch.convs):
            specs.append((f"down{level}_{i}", c_in if i == 0 else c, c, arch.kernel))
        c_in = c
    for level in reversed(range(arch.depth)):
        c = arch.base * 2**level
        c_up = arch.base * 2 ** (level + 1)
        for i in range(arch.convs):
            specs.append((f"up{level}_{i}", (c_up + c) if i == 0 else c, c, arch.kernel))
    specs.append(("head", arch.base, 1, 1))
    return specs


def init_params(arch: Arch, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    params: dict[str, np.ndarray] = {}
    for name, cin, cout, k in layer_specs(arch):
        std = math.sqrt(2.0 / (cin * k * k))  # He init for ReLU
        if name == "head":
            std = 1e-3  # start as (almost) the identity: output = input
        params[f"{name}.w"] = (rng.standard_normal((cout, cin, k, k)) * std).astype(np.float32)
        params[f"{name}.b"] = np.zeros((cout,), np.float32)
    return params


def count_params(params) -> int:
    return int(sum(np.prod(v.shape) for v in params.values()))


# ----------------------------------------------------------------------------------------
# JAX implementation (imported lazily so the ONNX side works without JAX)


def apply(params, adu, arch: Arch):
    """Raw ADU [N,1,H,W] -> denoised ADU [N,1,H,W] (JAX)."""
    import jax
    import jax.numpy as jnp

    def conv(x, name, relu=True):
        w, b = params[f"{name}.w"], params[f"{name}.b"]
        p = w.shape[-1] // 2
        y = jax.lax.conv_general_dilated(
            x, w, (1, 1), [(p, p), (p, p)], dimension_numbers=("NCHW", "OIHW", "NCHW"),
            precision=jax.lax.Precision.HIGHEST,
        )
        y = y + b[None, :, None, None]
        return jax.nn.relu(y) if relu else y

    def pool(x):
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    def up(x):
        return jnp.repeat(jnp.repeat(x, 2, axis=2), 2, axis=3)

    z = to_stabilised(adu, jnp)
    x = z
    skips = []
    for level in range(arch.depth + 1):
        for i in range(arch.convs):
            x = conv(x, f"down{level}_{i}")
        if level < arch.depth:
            skips.append(x)
            x = pool(x)
    for level in reversed(range(arch.depth)):
        x = jnp.concatenate([up(x), skips[level]], axis=1)
        for i in range(arch.convs):
            x = conv(x, f"up{level}_{i}")
    z_out = z + conv(x, "head", relu=False)
    return from_stabilised(z_out, jnp)


def to_stabilised(adu, xp):
    e = (adu - CAMERA["offset_adu"]) / CAMERA["gain_adu_per_e"]
    v = 2.0 * xp.sqrt(xp.maximum(e + 0.375 + SIGMA_E2, 0.0))
    return (v - STAB_MEAN) / STAB_SCALE


def from_stabilised(z, xp):
    v = xp.maximum(z * STAB_SCALE + STAB_MEAN, 0.0)
    e = (v * 0.5) ** 2 - 0.375 - SIGMA_E2
    return CAMERA["offset_adu"] + CAMERA["gain_adu_per_e"] * e


# ----------------------------------------------------------------------------------------
# ONNX export


def to_onnx(params, arch: Arch, input_name="image", output_name="denoised", opset=17,
            doc: str = ""):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    counter = [0]

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def fresh(prefix):
        counter[0] += 1
        return f"{prefix}_{counter[0]}"

    def op(kind, inputs, prefix=None, **attrs):
        out = fresh(prefix or kind.lower())
        nodes.append(helper.make_node(kind, inputs, [out], name=out, **attrs))
        return out

    for k, v in params.items():
        inits.append(numpy_helper.from_array(np.asarray(v, dtype=np.float32), k))

    def conv(x, name, relu=True):
        w = np.asarray(params[f"{name}.w"])
        p = w.shape[-1] // 2
        y = op("Conv", [x, f"{name}.w", f"{name}.b"], prefix=name, pads=[p, p, p, p],
               kernel_shape=list(w.shape[-2:]))
        return op("Relu", [y], prefix=f"{name}_relu") if relu else y

    # camera normalisation + variance stabilisation
    e = op("Mul", [op("Sub", [input_name, const("cam_offset", CAMERA["offset_adu"])]),
                   const("cam_inv_gain", 1.0 / CAMERA["gain_adu_per_e"])], prefix="electrons")
    t = op("Max", [op("Add", [e, const("gat_shift", 0.375 + SIGMA_E2)]), const("zero", 0.0)])
    v = op("Mul", [op("Sqrt", [t]), const("two", 2.0)], prefix="gat")
    z = op("Mul", [op("Sub", [v, const("stab_mean", STAB_MEAN)]),
                   const("stab_inv_scale", 1.0 / STAB_SCALE)], prefix="z")

    x = z
    skips = []
    for level in range(arch.depth + 1):
        for i in range(arch.convs):
            x = conv(x, f"down{level}_{i}")
        if level < arch.depth:
            skips.append(x)
            x = op("MaxPool", [x], prefix=f"pool{level}", kernel_shape=[2, 2], strides=[2, 2])
    scales = const("up_scales", [1.0, 1.0, 2.0, 2.0])
    for level in reversed(range(arch.depth)):
        u = op("Resize", [x, "", scales], prefix=f"up{level}", mode="nearest",
               coordinate_transformation_mode="asymmetric", nearest_mode="floor")
        x = op("Concat", [u, skips[level]], prefix=f"cat{level}", axis=1)
        for i in range(arch.convs):
            x = conv(x, f"up{level}_{i}")
    z_out = op("Add", [z, conv(x, "head", relu=False)], prefix="residual")

    # inverse stabilisation + back to ADU
    v2 = op("Max", [op("Add", [op("Mul", [z_out, const("stab_scale", STAB_SCALE)]), "stab_mean"]),
                    "zero"])
    half = op("Mul", [v2, const("half", 0.5)])
    e2 = op("Sub", [op("Mul", [half, half]), "gat_shift"], prefix="electrons_out")
    adu = op("Add", [op("Mul", [e2, const("cam_gain", CAMERA["gain_adu_per_e"])]), "cam_offset"])
    nodes.append(helper.make_node("Identity", [adu], [output_name], name="output"))

    graph = helper.make_graph(
        nodes, "denoise_care_nuclei",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [1, 1, "H", "W"])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [1, 1, "H", "W"])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="scopepilot-training", doc_string=doc)
    model.ir_version = 8
    meta = {**{f"arch.{k}": str(v) for k, v in asdict(arch).items()},
            **{f"camera.{k}": str(v) for k, v in CAMERA.items()},
            "size_multiple": str(arch.multiple), "receptive_radius": str(arch.receptive_radius())}
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model, full_check=True)
    return model
