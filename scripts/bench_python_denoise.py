"""The "Python pipeline" baseline: tiled ONNX Runtime inference of a 16-bit stack, frame by frame.

One of three ways the benchmark runs the same model on the same frames with the same threads:
(a) a bare ONNX Runtime loop, (b) the Rust daemon's pipeline, (c) this script, which does what a
typical Python acquisition pipeline does: uint16 frame -> float32 -> tiles -> onnxruntime ->
tile centres written into a preallocated float32 output.

The tiling replicates the Rust tiler (src/inference/tiling.rs) exactly:
- tile side = min(tile, side) (tile 0 = the whole frame, and then the halo is 0);
- tile starts k*tile for k = 0..ceil(n/tile)-1, clamped to n - tile (the last tile overlaps);
- input window: starts at max(start - halo, 0) rounded DOWN to a multiple of M, ends at
  min(start + tile + halo, n), and its size is rounded UP to a multiple of M; pixels beyond the
  frame come from reflection (index n -> n-2, numpy 'reflect' mode);
- the model runs on the window and the tile's region is copied back to the output.

Usage (repo venv):
  .venv/bin/python scripts/bench_python_denoise.py --model models/denoise-care-nuclei/model.onnx \\
      --stack frames.npy --threads 2 --tile 256 --halo 28 --multiple 4 --frames 50 --warmup 5 --json
  add --check to compare, on the first frame, the tiled output with one whole-frame run (away
  from the frame border, where only the reflection padding differs) and print the max |diff|.

--stack: a .npy array (frames, H, W) or (H, W), or a multi-page .tif/.tiff (uncompressed 16-bit
greyscale; read with tifffile when installed, else with the minimal reader below). Frames are
cycled when --frames exceeds the stack. Latency per frame is measured with time.perf_counter
from the uint16 frame to the finished float32 output (conversion, tiling, inference, copies);
throughput is measured frames / wall time of the measured loop.

JSON (--json), one line: {"frames", "threads", "fps", "p50_ms", "p99_ms", "mean_ms"} plus
"pipeline": "python", "height", "width", "tile", "halo", "multiple", "tiles_per_frame",
"min_ms", "max_ms", "warmup".
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import time
from pathlib import Path

import numpy as np


# ---------------------------------------------------------------------------------------------
# Tiling (mirror of src/inference/tiling.rs).


def round_up(n: int, m: int) -> int:
    m = max(m, 1)
    return -(-n // m) * m


def starts(n: int, tile: int) -> list[int]:
    return [min(k * tile, max(n - tile, 0)) for k in range(-(-n // tile))]


def axis_windows(n: int, tile: int, halo: int, multiple: int) -> list[tuple[int, int, int]]:
    """(tile start, window start, window size) along one axis of length n."""
    m = max(multiple, 1)
    out = []
    for s in starts(n, tile):
        w0 = max(s - halo, 0) // m * m
        w1 = min(s + tile + halo, n)
        out.append((s, w0, round_up(w1 - w0, multiple)))
    return out


class Tiler:
    """The tile plan for one frame size; `run` tiles a frame through `model`."""

    def __init__(self, height: int, width: int, tile: int, halo: int, multiple: int):
        self.h, self.w = height, width
        self.th = height if tile == 0 else min(tile, height)
        self.tw = width if tile == 0 else min(tile, width)
        halo = 0 if tile == 0 else halo
        self.rows = axis_windows(height, self.th, halo, multiple)
        self.cols = axis_windows(width, self.tw, halo, multiple)
        # Windows may reach past the bottom/right edge (never before 0): pad once per frame.
        self.pad_h = max(w0 + size for _, w0, size in self.rows) - height
        self.pad_w = max(w0 + size for _, w0, size in self.cols) - width

    @property
    def tiles(self) -> int:
        return len(self.rows) * len(self.cols)

    def padded(self, frame: np.ndarray) -> np.ndarray:
        if self.pad_h == 0 and self.pad_w == 0:
            return frame
        # numpy 'reflect' = the Rust reflect(): -1 -> 1, n -> n - 2 (repeats for wide pads).
        # A side of 1 pixel can only repeat that pixel (Rust: index 0), i.e. 'edge'.
        if self.h > 1 and self.w > 1:
            return np.pad(frame, ((0, self.pad_h), (0, self.pad_w)), mode="reflect")
        src = np.pad(frame, ((0, self.pad_h), (0, 0)), mode="reflect" if self.h > 1 else "edge")
        return np.pad(src, ((0, 0), (0, self.pad_w)), mode="reflect" if self.w > 1 else "edge")

    def run(self, frame: np.ndarray, out: np.ndarray, model) -> None:
        """frame: float32 (H, W); out: float32 (H, W), written tile by tile."""
        src = self.padded(frame)
        th, tw = self.th, self.tw
        for y0, iy0, ih in self.rows:
            for x0, ix0, iw in self.cols:
                window = src[iy0 : iy0 + ih, ix0 : ix0 + iw]
                result = model(window)  # (ih, iw)
                out[y0 : y0 + th, x0 : x0 + tw] = result[y0 - iy0 : y0 - iy0 + th, x0 - ix0 : x0 - ix0 + tw]


# ---------------------------------------------------------------------------------------------
# Model.


def make_session(path: str, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    out_name = sess.get_outputs()[0].name
    in_name = inp.name

    def model(window: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(window, dtype=np.float32)[None, None]
        (y,) = sess.run([out_name], {in_name: x})
        return y[0, 0]

    return model


# ---------------------------------------------------------------------------------------------
# Stack reading.


def read_tiff_minimal(path: Path) -> np.ndarray:
    """Uncompressed, single-sample, 8/16-bit unsigned multi-page TIFF (strips), either byte order."""
    data = path.read_bytes()
    bo = {b"II": "<", b"MM": ">"}.get(data[:2])
    if bo is None or struct.unpack(bo + "H", data[2:4])[0] != 42:
        raise ValueError(f"{path}: not a classic TIFF (BigTIFF needs tifffile)")
    (ifd,) = struct.unpack(bo + "I", data[4:8])
    type_fmt = {3: "H", 4: "I"}
    pages = []
    while ifd:
        (count,) = struct.unpack(bo + "H", data[ifd : ifd + 2])
        tags = {}
        for i in range(count):
            e = ifd + 2 + 12 * i
            tag, typ, n = struct.unpack(bo + "HHI", data[e : e + 8])
            if typ not in type_fmt:
                continue
            size = struct.calcsize(type_fmt[typ]) * n
            off = e + 8 if size <= 4 else struct.unpack(bo + "I", data[e + 8 : e + 12])[0]
            tags[tag] = struct.unpack(bo + type_fmt[typ] * n, data[off : off + size])
        width, height = tags[256][0], tags[257][0]
        bits = tags.get(258, (1,))[0]
        if tags.get(259, (1,))[0] != 1 or tags.get(277, (1,))[0] != 1 or bits not in (8, 16):
            raise ValueError(f"{path}: only uncompressed 8/16-bit greyscale TIFF is supported without tifffile")
        dtype = np.dtype(np.uint8 if bits == 8 else bo + "u2")
        raw = b"".join(data[o : o + c] for o, c in zip(tags[273], tags[279]))
        pages.append(np.frombuffer(raw, dtype=dtype, count=width * height).reshape(height, width).astype(dtype.newbyteorder("=")))
        e = ifd + 2 + 12 * count
        (ifd,) = struct.unpack(bo + "I", data[e : e + 4])
    return np.stack(pages)


def read_stack(path: str) -> np.ndarray:
    p = Path(path)
    if p.suffix.lower() == ".npy":
        stack = np.load(p)
    elif p.suffix.lower() in (".tif", ".tiff"):
        try:
            import tifffile
        except ImportError:
            stack = read_tiff_minimal(p)
        else:
            stack = tifffile.imread(p)
    else:
        raise SystemExit(f"--stack: expected .npy, .tif or .tiff, got {p.name}")
    if stack.ndim == 2:
        stack = stack[None]
    if stack.ndim != 3:
        raise SystemExit(f"--stack: expected (frames, H, W), got shape {stack.shape}")
    return stack


# ---------------------------------------------------------------------------------------------


def check(stack: np.ndarray, model, tiler: Tiler, halo: int, multiple: int) -> float:
    frame = stack[0].astype(np.float32)
    h, w = frame.shape
    tiled = np.empty((h, w), np.float32)
    tiler.run(frame, tiled, model)
    whole = np.empty((h, w), np.float32)
    Tiler(h, w, 0, 0, multiple).run(frame, whole, model)
    b = halo  # the reflection padding can only change pixels within the receptive field of the border
    inner = np.abs(tiled[b : h - b, b : w - b] - whole[b : h - b, b : w - b])
    full = np.abs(tiled - whole)
    print(
        f"check: {tiler.tiles} tiles of {tiler.th}x{tiler.tw} vs one {h}x{w} pass: "
        f"max |diff| {inner.max():.6g} away from the border ({b} px), {full.max():.6g} overall; "
        f"output range {whole.min():.6g}..{whole.max():.6g}",
        file=sys.stderr,
    )
    return float(inner.max())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="ONNX model, input [1, 1, H, W] float32")
    ap.add_argument("--stack", required=True, help=".npy (frames, H, W) or multi-page 16-bit .tif")
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    ap.add_argument("--tile", type=int, default=256, help="output tile side (0 = whole frame)")
    ap.add_argument("--halo", type=int, default=0, help="context pixels per tile side")
    ap.add_argument("--multiple", type=int, default=1, help="model input sides must be multiples of this")
    ap.add_argument("--frames", type=int, default=20, help="measured frames (the stack is cycled)")
    ap.add_argument("--warmup", type=int, default=3, help="unmeasured frames first")
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    ap.add_argument("--check", action="store_true", help="compare tiled vs whole-frame on frame 0 first")
    ap.add_argument("--check-tol", type=float, default=1e-2, help="max |diff| allowed by --check")
    args = ap.parse_args()
    if args.frames < 1 or args.warmup < 0 or args.tile < 0 or args.halo < 0 or args.multiple < 1 or args.threads < 1:
        ap.error("need --frames >= 1, --warmup >= 0, --tile >= 0, --halo >= 0, --multiple >= 1, --threads >= 1")

    stack = read_stack(args.stack)
    n_stack, h, w = stack.shape
    model = make_session(args.model, args.threads)
    tiler = Tiler(h, w, args.tile, args.halo, args.multiple)

    if args.check:
        diff = check(stack, model, tiler, args.halo, args.multiple)
        if diff > args.check_tol:
            print(f"check FAILED: {diff} > --check-tol {args.check_tol}", file=sys.stderr)
            return 1

    out = np.empty((h, w), np.float32)
    for i in range(args.warmup):
        tiler.run(stack[i % n_stack].astype(np.float32), out, model)

    lat = np.empty(args.frames)
    t_start = time.perf_counter()
    for i in range(args.frames):
        raw = stack[(args.warmup + i) % n_stack]
        t0 = time.perf_counter()
        tiler.run(raw.astype(np.float32), out, model)
        lat[i] = time.perf_counter() - t0
    total = time.perf_counter() - t_start

    ms = lat * 1e3
    result = {
        "frames": args.frames,
        "threads": args.threads,
        "fps": args.frames / total,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "pipeline": "python",
        "height": h,
        "width": w,
        "tile": args.tile,
        "halo": args.halo if args.tile else 0,
        "multiple": args.multiple,
        "tiles_per_frame": tiler.tiles,
        "min_ms": float(ms.min()),
        "max_ms": float(ms.max()),
        "warmup": args.warmup,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"python pipeline: {args.frames} frames {h}x{w}, {tiler.tiles} tiles/frame, {args.threads} threads: "
            f"{result['fps']:.2f} fps, latency p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
            f"mean {result['mean_ms']:.1f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
