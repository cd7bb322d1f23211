"""The frame interpolator: a small pixel-unshuffle U-Net that predicts a residual on top of the
linear blend of two frames, with the intensity normalisation built into the graph.

One topology, two implementations that must agree (like denoiser_model.py, whose op backends
`_JaxOps` / `_OnnxOps` are reused here):
- `apply(params, frames, arch)` in JAX (training): frames [N, 3, H, W] float32 -> middle [N, 1, H, W];
- `to_onnx(params, arch)` writes the same computation as a plain ONNX graph (opset 17).

Input channels: frame0, frame1 (raw camera values, ADU, any offset and range) and tau (a constant
plane in (0, 1): the time of the wanted frame, 0 = frame0, 1 = frame1).

Pipeline inside the model:
  m, s   = mean and std of frame0 and frame1 jointly, per sample  (s = sqrt(var + EPS_ADU2))
  a, b   = (frame0 - m) / s, (frame1 - m) / s
  lin    = a + tau * (b - a)                                 the linear blend (normalised)
  x      = [a, b, lin, tau - 0.5]                            4 channels
  r      = net(x)                                            pixel-unshuffle U-Net, 1 channel
  middle = (lin + r) * s + m                                 back to ADU, same affine map

The statistics are taken over whatever the model is given (a whole frame or a tile): the output
is an affine-equivariant function of the input frames (up to EPS_ADU2), so it does not depend on
the camera offset or gain. net: space-to-depth by `unshuffle`, a U-Net of `depth` 2x2
max-poolings with `base` channels at the top level (doubled per level), `convs` 3x3 convs + ReLU
per level and side, nearest upsampling, skip concatenation, a 1x1 head to unshuffle**2 channels
and depth-to-space back to full resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from denoiser_model import _JaxOps, _OnnxOps, count_params, finish_onnx, init_layers, unet_residual  # noqa: F401
from denoiser_model import layer_specs as unet_layer_specs, macs_per_pixel as unet_macs_per_pixel

IN_CHANNELS = 4  # a, b, lin, tau - 0.5 (the graph computes them from frame0, frame1, tau)
EPS_ADU2 = 1.0  # added to the joint variance (ADU^2): flat frames do not blow up


@dataclass(frozen=True)
class Arch:
    depth: int = 2
    base: int = 16
    convs: int = 2
    kernel: int = 3
    unshuffle: int = 4

    @property
    def multiple(self) -> int:
        return self.unshuffle * 2**self.depth

    @property
    def kind(self) -> str:
        return f"pixel-unshuffle-{self.unshuffle}x-unet-residual-on-linear-blend"

    @property
    def spec(self) -> str:
        return f"u{self.unshuffle}-d{self.depth}-b{self.base}-c{self.convs}"

    def receptive_radius(self) -> int:
        r = 0
        k = self.kernel // 2
        for level in range(self.depth):
            r += self.convs * k * 2**level + 2**level
        r += self.convs * k * 2**self.depth
        for level in reversed(range(self.depth)):
            r += 2**level + self.convs * k * 2**level
        s = self.unshuffle
        return r * s + (s - 1)

    def halo(self) -> int:
        return math.ceil(self.receptive_radius() / self.multiple) * self.multiple


ARCHS = {
    "interp": Arch(depth=2, base=16, convs=2, unshuffle=4),
}


def parse_arch(spec: str) -> Arch:
    import re

    if spec in ARCHS:
        return ARCHS[spec]
    m = re.fullmatch(r"u(\d+)-d(\d+)-b(\d+)-c(\d+)", spec)
    if not m:
        raise ValueError(f"bad architecture {spec!r}")
    s, d, b, c = map(int, m.groups())
    return Arch(depth=d, base=b, convs=c, unshuffle=s)


def layer_specs(arch: Arch):
    return unet_layer_specs(arch, IN_CHANNELS)


def macs_per_pixel(arch: Arch) -> float:
    return unet_macs_per_pixel(arch, IN_CHANNELS)


def init_params(arch: Arch, seed: int) -> dict[str, np.ndarray]:
    """He init; the head starts near zero, so the untrained model is the linear blend."""
    return init_layers(layer_specs(arch), seed)


def _net(ops, x, arch: Arch):
    """Residual r [N,1,H,W] from the 4-channel normalised input x (backend-independent)."""
    return unet_residual(ops, x, arch)


# ----------------------------------------------------------------------------------------
# JAX


def normalise(frames, xp):
    """-> (a, b, tau, m, s) with a, b the normalised frames (NCHW, 1 channel each)."""
    f0, f1, tau = frames[:, 0:1], frames[:, 1:2], frames[:, 2:3]
    both = xp.concatenate([f0, f1], axis=1)
    m = both.mean(axis=(1, 2, 3), keepdims=True)
    s = xp.sqrt(((both - m) ** 2).mean(axis=(1, 2, 3), keepdims=True) + EPS_ADU2)
    return (f0 - m) / s, (f1 - m) / s, tau, m, s


def apply_normalised(params, frames, arch: Arch):
    """-> (prediction in normalised units, m, s)."""
    import jax.numpy as jnp

    a, b, tau, m, s = normalise(frames, jnp)
    lin = a + tau * (b - a)
    x = jnp.concatenate([a, b, lin, tau - 0.5], axis=1)
    r = _net(_JaxOps(params), x, arch)
    return lin + r, m, s


def apply(params, frames, arch: Arch):
    """frames [N,3,H,W] (frame0 ADU, frame1 ADU, tau) -> middle ADU [N,1,H,W] (JAX)."""
    y, m, s = apply_normalised(params, frames, arch)
    return y * s + m


# ----------------------------------------------------------------------------------------
# ONNX


def to_onnx(params, arch: Arch, name="interpolate", input_name="frames", output_name="middle", opset=17,
            doc: str = ""):
    g = _OnnxOps(params)
    op, const = g.op, g.const

    def chan(i):
        g.inits.append(g.numpy_helper.from_array(np.array([i], np.int64), f"ch{i}_start"))
        g.inits.append(g.numpy_helper.from_array(np.array([i + 1], np.int64), f"ch{i}_end"))
        if "ch_axis" not in {t.name for t in g.inits}:
            g.inits.append(g.numpy_helper.from_array(np.array([1], np.int64), "ch_axis"))
        return op("Slice", [input_name, f"ch{i}_start", f"ch{i}_end", "ch_axis"], prefix=f"channel{i}")

    f0, f1, tau = chan(0), chan(1), chan(2)
    both = op("Concat", [f0, f1], prefix="both", axis=1)
    m = op("ReduceMean", [both], prefix="mean", axes=[1, 2, 3], keepdims=1)
    d = op("Sub", [both, m], prefix="centred")
    var = op("ReduceMean", [op("Mul", [d, d], prefix="sq")], prefix="var", axes=[1, 2, 3], keepdims=1)
    s = op("Sqrt", [op("Add", [var, const("eps_adu2", EPS_ADU2)])], prefix="std")
    inv_s = op("Reciprocal", [s], prefix="inv_std")
    a = op("Mul", [op("Sub", [f0, m]), inv_s], prefix="a")
    b = op("Mul", [op("Sub", [f1, m]), inv_s], prefix="b")
    lin = op("Add", [a, op("Mul", [tau, op("Sub", [b, a])])], prefix="lin")
    tc = op("Sub", [tau, const("half", 0.5)], prefix="tau_c")
    x = op("Concat", [a, b, lin, tc], prefix="net_in", axis=1)
    r = _net(g, x, arch)
    y = op("Add", [lin, r], prefix="pred")
    out = op("Add", [op("Mul", [y, s]), m], prefix="adu")
    return finish_onnx(g, out, arch, name, (input_name, 3), output_name, opset, doc,
                       meta_after={"input_channels": "frame0,frame1,tau"})
