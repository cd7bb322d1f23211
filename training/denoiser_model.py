"""The denoisers: small residual U-Nets with the camera normalisation built in.

One topology, two implementations that must agree:
- `apply(params, adu, arch)` in JAX (training), NCHW float32, raw ADU in -> ADU out;
- `to_onnx(params, arch)` writes the same computation as a plain ONNX graph with `onnx.helper`
  (Conv, Relu, MaxPool, Resize, Concat, SpaceToDepth, DepthToSpace, Add, Sqrt, Mul, ...), so the
  daemon can run it with ONNX Runtime. `training/train_denoiser.py` checks that both agree.
The network body is written once (`_body`) against a tiny op interface that both backends
implement (`_JaxOps`, `_OnnxOps`).

Pipeline inside the model (all constants are baked in, see CAMERA / STAB below):
  e   = (adu - offset) / gain                        photo-electrons
  v   = 2 * sqrt(max(e + 3/8 + sigma_e^2, 0))        generalised Anscombe: noise std ~1 everywhere
  z   = (v - STAB_MEAN) / STAB_SCALE                 roughly zero-mean, unit-ish range
  z'  = z + net(z)                                   residual network (see below)
  v'  = max(z' * STAB_SCALE + STAB_MEAN, 0)
  e'  = (v' / 2)^2 - 3/8 - sigma_e^2                 algebraic inverse; the loss is taken on e',
  adu'= offset + gain * e'                           so the network learns an unbiased output

net(z): optional pixel unshuffle (space-to-depth by `unshuffle`: each s x s block becomes s*s
channels at 1/s resolution), a U-Net of `depth` 2x2 max-poolings with `base` channels at its top
level (doubled per level, `convs` 3x3 convs + ReLU per level and side, nearest upsampling, skip
concatenation), a 1x1 head back to s*s channels, and pixel shuffle (depth-to-space) back to full
resolution. `unshuffle=1` is the classic CARE U-Net; `unshuffle=4` does all the work at 1/16 of
the pixels, which is what makes the fast model real-time on a CPU.

Named presets: ARCHS ("care", "fast"); MODEL_NAMES maps them to the model folders.
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
    depth: int = 2  # number of 2x2 poolings (after the unshuffle)
    base: int = 16  # channels at the top U-Net level, doubled per level
    convs: int = 2  # 3x3 convs per level (encoder and decoder)
    kernel: int = 3
    unshuffle: int = 1  # pixel-unshuffle (space-to-depth) factor before the U-Net; 1 = none

    @property
    def multiple(self) -> int:
        """H and W must be divisible by this."""
        return self.unshuffle * 2**self.depth

    @property
    def kind(self) -> str:
        return "unet" if self.unshuffle == 1 else f"pixel-unshuffle-{self.unshuffle}x-unet"

    @property
    def spec(self) -> str:
        return f"u{self.unshuffle}-d{self.depth}-b{self.base}-c{self.convs}"

    def receptive_radius(self) -> int:
        """Half-width of the receptive field in input pixels (an upper bound for this topology)."""
        r = 0
        k = self.kernel // 2
        # in units of unshuffled pixels: encoder levels 0..depth-1, then pool; bottleneck at
        # level depth; decoder back up
        for level in range(self.depth):
            r += self.convs * k * 2**level  # convs at this level
            r += 2**level  # 2x2 pool, stride 2 (one extra input pixel at this scale)
        r += self.convs * k * 2**self.depth  # bottleneck
        for level in reversed(range(self.depth)):
            r += 2 ** (level + 1) - 2**level  # nearest upsample: up to one coarse pixel
            r += self.convs * k * 2**level
        s = self.unshuffle
        return r * s + (s - 1)  # an output pixel also sees the rest of its own s x s block

    def halo(self) -> int:
        """Receptive radius rounded up to the size multiple (context per side for exact tiles)."""
        return math.ceil(self.receptive_radius() / self.multiple) * self.multiple


ARCHS = {
    "care": Arch(depth=2, base=16, convs=2, unshuffle=1),
    "fast": Arch(depth=1, base=16, convs=2, unshuffle=2),
}
MODEL_NAMES = {"care": "denoise-care-nuclei", "fast": "denoise-fast-nuclei"}


def parse_arch(spec: str) -> Arch:
    """A preset name from ARCHS, or `u<unshuffle>-d<depth>-b<base>-c<convs>`."""
    import re

    if spec in ARCHS:
        return ARCHS[spec]
    m = re.fullmatch(r"u(\d+)-d(\d+)-b(\d+)-c(\d+)", spec)
    if not m:
        raise ValueError(f"bad architecture {spec!r}: use a preset {list(ARCHS)} or u<s>-d<depth>-b<base>-c<convs>")
    s, d, b, c = map(int, m.groups())
    return Arch(depth=d, base=b, convs=c, unshuffle=s)


def layer_specs(arch: Arch, in_channels: int = 1) -> list[tuple[str, int, int, int, int]]:
    """(name, in_channels, out_channels, kernel, level) for every conv of the U-Net on an input
    of `in_channels` planes, in execution order. `level` is the U-Net level (resolution
    1 / (unshuffle * 2**level))."""
    specs = []
    c_in = in_channels * arch.unshuffle**2
    for level in range(arch.depth + 1):
        c = arch.base * 2**level
        for i in range(arch.convs):
            specs.append((f"down{level}_{i}", c_in if i == 0 else c, c, arch.kernel, level))
        c_in = c
    for level in reversed(range(arch.depth)):
        c = arch.base * 2**level
        c_up = arch.base * 2 ** (level + 1)
        for i in range(arch.convs):
            specs.append((f"up{level}_{i}", (c_up + c) if i == 0 else c, c, arch.kernel, level))
    specs.append(("head", arch.base, arch.unshuffle**2, 1, 0))
    return specs


def macs_per_pixel(arch: Arch, in_channels: int = 1) -> float:
    """Multiply-accumulates of the convolutions per input pixel."""
    return float(sum(cin * cout * k * k / (arch.unshuffle**2 * 4**level)
                     for _, cin, cout, k, level in layer_specs(arch, in_channels)))


def init_params(arch: Arch, seed: int) -> dict[str, np.ndarray]:
    return init_layers(layer_specs(arch), seed)


def init_layers(specs, seed: int) -> dict[str, np.ndarray]:
    """Weights for the layers `specs` ((name, cin, cout, k, _) each): He init for ReLU, and a
    near-zero `head`, so a residual network starts as (almost) its skip path."""
    rng = np.random.default_rng(seed)
    params: dict[str, np.ndarray] = {}
    for name, cin, cout, k, _ in specs:
        std = math.sqrt(2.0 / (cin * k * k))  # He init for ReLU
        if name == "head":
            std = 1e-3  # start as (almost) the identity: output = input
        params[f"{name}.w"] = (rng.standard_normal((cout, cin, k, k)) * std).astype(np.float32)
        params[f"{name}.b"] = np.zeros((cout,), np.float32)
    return params


def count_params(params) -> int:
    return int(sum(np.prod(v.shape) for v in params.values()))


def _body(ops, z, arch: Arch):
    """The residual network on the stabilised image z [N,1,H,W] (backend-independent)."""
    return ops.add(z, unet_residual(ops, z, arch))


def unet_residual(ops, x, arch):
    """The U-Net's residual on x [N,C,H,W] (backend-independent): space-to-depth by
    arch.unshuffle, arch.depth levels of arch.convs convs, a 1x1 head, depth-to-space back."""
    s = arch.unshuffle
    x = ops.s2d(x, s) if s > 1 else x
    skips = []
    for level in range(arch.depth + 1):
        for i in range(arch.convs):
            x = ops.conv(x, f"down{level}_{i}")
        if level < arch.depth:
            skips.append(x)
            x = ops.pool(x, level)
    for level in reversed(range(arch.depth)):
        x = ops.concat(ops.up(x, level), skips[level], level)
        for i in range(arch.convs):
            x = ops.conv(x, f"up{level}_{i}")
    r = ops.conv(x, "head", relu=False)
    return ops.d2s(r, s) if s > 1 else r


# ----------------------------------------------------------------------------------------
# JAX implementation (imported lazily so the ONNX side works without JAX)


class _JaxOps:
    def __init__(self, params):
        import jax
        import jax.numpy as jnp

        self.jax, self.jnp, self.params = jax, jnp, params

    def conv(self, x, name, relu=True):
        jax = self.jax
        w, b = self.params[f"{name}.w"], self.params[f"{name}.b"]
        p = w.shape[-1] // 2
        y = jax.lax.conv_general_dilated(
            x, w, (1, 1), [(p, p), (p, p)], dimension_numbers=("NCHW", "OIHW", "NCHW"),
            precision=jax.lax.Precision.HIGHEST,
        )
        y = y + b[None, :, None, None]
        return jax.nn.relu(y) if relu else y

    def pool(self, x, level):
        jax = self.jax
        return jax.lax.reduce_window(x, -self.jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    def up(self, x, level):
        jnp = self.jnp
        return jnp.repeat(jnp.repeat(x, 2, axis=2), 2, axis=3)

    def concat(self, a, b, level):
        return self.jnp.concatenate([a, b], axis=1)

    def s2d(self, x, s):  # = ONNX SpaceToDepth: out channel (by * s + bx) * C + c
        n, c, h, w = x.shape
        x = x.reshape(n, c, h // s, s, w // s, s).transpose(0, 3, 5, 1, 2, 4)
        return x.reshape(n, s * s * c, h // s, w // s)

    def d2s(self, x, s):  # = ONNX DepthToSpace mode DCR (the inverse of SpaceToDepth)
        n, c, h, w = x.shape
        x = x.reshape(n, s, s, c // (s * s), h, w).transpose(0, 3, 4, 1, 5, 2)
        return x.reshape(n, c // (s * s), h * s, w * s)

    def add(self, a, b):
        return a + b


def apply(params, adu, arch: Arch):
    """Raw ADU [N,1,H,W] -> denoised ADU [N,1,H,W] (JAX)."""
    import jax.numpy as jnp

    z = to_stabilised(adu, jnp)
    return from_stabilised(_body(_JaxOps(params), z, arch), jnp)


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


class _OnnxOps:
    def __init__(self, params):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.params = params
        self.nodes, self.inits = [], []
        self.counter = 0
        for k, v in params.items():
            self.inits.append(numpy_helper.from_array(np.asarray(v, dtype=np.float32), k))

    def const(self, name, value):
        self.inits.append(self.numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def op(self, kind, inputs, prefix=None, **attrs):
        self.counter += 1
        out = f"{prefix or kind.lower()}_{self.counter}"
        self.nodes.append(self.helper.make_node(kind, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x, name, relu=True):
        w = np.asarray(self.params[f"{name}.w"])
        p = w.shape[-1] // 2
        y = self.op("Conv", [x, f"{name}.w", f"{name}.b"], prefix=name, pads=[p, p, p, p],
                    kernel_shape=list(w.shape[-2:]))
        return self.op("Relu", [y], prefix=f"{name}_relu") if relu else y

    def pool(self, x, level):
        return self.op("MaxPool", [x], prefix=f"pool{level}", kernel_shape=[2, 2], strides=[2, 2])

    def up(self, x, level):
        if "up_scales" not in {i.name for i in self.inits}:
            self.const("up_scales", [1.0, 1.0, 2.0, 2.0])
        return self.op("Resize", [x, "", "up_scales"], prefix=f"up{level}", mode="nearest",
                       coordinate_transformation_mode="asymmetric", nearest_mode="floor")

    def concat(self, a, b, level):
        return self.op("Concat", [a, b], prefix=f"cat{level}", axis=1)

    def s2d(self, x, s):
        return self.op("SpaceToDepth", [x], prefix="unshuffle", blocksize=s)

    def d2s(self, x, s):
        return self.op("DepthToSpace", [x], prefix="shuffle", blocksize=s, mode="DCR")

    def add(self, a, b):
        return self.op("Add", [a, b], prefix="add")


def to_onnx(params, arch: Arch, name="denoise", input_name="image", output_name="denoised",
            opset=17, doc: str = ""):
    g = _OnnxOps(params)
    op, const = g.op, g.const

    # camera normalisation + variance stabilisation
    e = op("Mul", [op("Sub", [input_name, const("cam_offset", CAMERA["offset_adu"])]),
                   const("cam_inv_gain", 1.0 / CAMERA["gain_adu_per_e"])], prefix="electrons")
    t = op("Max", [op("Add", [e, const("gat_shift", 0.375 + SIGMA_E2)]), const("zero", 0.0)])
    v = op("Mul", [op("Sqrt", [t]), const("two", 2.0)], prefix="gat")
    z = op("Mul", [op("Sub", [v, const("stab_mean", STAB_MEAN)]),
                   const("stab_inv_scale", 1.0 / STAB_SCALE)], prefix="z")

    z_out = _body(g, z, arch)

    # inverse stabilisation + back to ADU
    v2 = op("Max", [op("Add", [op("Mul", [z_out, const("stab_scale", STAB_SCALE)]), "stab_mean"]),
                    "zero"])
    half = op("Mul", [v2, const("half", 0.5)])
    e2 = op("Sub", [op("Mul", [half, half]), "gat_shift"], prefix="electrons_out")
    adu = op("Add", [op("Mul", [e2, const("cam_gain", CAMERA["gain_adu_per_e"])]), "cam_offset"])
    camera = {f"camera.{k}": str(v) for k, v in CAMERA.items()}
    return finish_onnx(g, adu, arch, name, (input_name, 1), output_name, opset, doc, camera)


def finish_onnx(g, out, arch, name, input_spec, output_name, opset, doc, meta_before=None,
                meta_after=None):
    """The ONNX model of graph `g` whose result is `out`: input `input_spec` = (name, channels)
    [N, C, H, W], one-channel output `output_name`, opset, doc, the architecture and size
    rules as metadata (`meta_before` / `meta_after` add entries around them), checked."""
    import onnx
    from onnx import TensorProto, helper

    input_name, channels = input_spec
    g.nodes.append(helper.make_node("Identity", [out], [output_name], name="output"))
    graph = helper.make_graph(
        g.nodes, name.replace("-", "_"),
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", channels, "H", "W"])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["N", 1, "H", "W"])],
        initializer=g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="scopepilot-training", doc_string=doc)
    model.ir_version = 8
    meta = {**{f"arch.{k}": str(v) for k, v in asdict(arch).items()},
            **(meta_before or {}),
            "size_multiple": str(arch.multiple), "receptive_radius": str(arch.receptive_radius()),
            "halo": str(arch.halo()), **(meta_after or {})}
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model, full_check=True)
    return model


# ----------------------------------------------------------------------------------------
# ONNX Runtime helpers (shared by training, evaluation and the architecture benchmark)


def ort_session(model, threads: int = 2):
    """CPU session as the daemon runs it: `threads` intra-op threads, graph optimisation ALL.
    `model` is a path or serialised bytes."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model if isinstance(model, (bytes, bytearray)) else str(model), so,
                                providers=["CPUExecutionProvider"])


def time_run(fn, x, reps: int = 15, warmup: int = 2) -> tuple[float, float]:
    """(median, min) seconds of fn(x)."""
    import time

    for _ in range(warmup):
        fn(x)
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn(x)
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)), float(np.min(ts))
