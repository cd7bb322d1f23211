#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets into fuzz/corpus/<target>/ (small, committed).

Run from the repository root with the venv's Python (numpy and tifffile come with
requirements-test.txt): `.venv/bin/python fuzz/make_seeds.py`. Seeds are valid or nearly
valid inputs, so that the fuzzer starts deep inside each parser; scripts/fuzz.sh copies them
before fuzzing, so what the fuzzer adds never lands in the repository.
"""

import io
import pathlib
import struct
import sys

import numpy as np
import tifffile

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def write(target: str, name: str, data: bytes) -> None:
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def config_seeds() -> None:
    for f in sorted((ROOT / "config").glob("*.toml")):
        write("config", f.name, f.read_bytes())
    write(
        "config",
        "push-small.toml",
        b'[api]\nlisten = "127.0.0.1:0"\n[http]\nenabled = false\n'
        b'[acquisition]\nautostart = false\nring_capacity = 16\nring_policy = "drop_newest"\n'
        b'[source]\nkind = "push"\n[source.push]\nwidth = 64\nheight = 64\npool_frames = 4\n'
        b'[[stages]]\nname = "g"\nkind = "gaussian"\nqueue = { capacity = 4, policy = "latest" }\n'
        b"params = { sigma = 1.5 }\n",
    )
    write(
        "config",
        "replay-rules.toml",
        b'[source]\nkind = "replay"\n[source.replay]\npath = "stack.tif"\nframe_rate_hz = 5\n'
        b"loop = true\nmax_mib = 16\n"
        b'[[stages]]\nname = "act"\nkind = "detect"\n'
        b'params = { detector = "activity", threshold = 5.0 }\n'
        b'[[rules]]\nname = "r1"\nwhen = { detector = "act", count = 2, window_s = 3 }\n'
        b'actions = [{ type = "set_interval", interval_ms = 50, duration_s = 10 }]\n'
        b'[recording]\ncompression = "zstd"\nzstd_level = 3\nframes_per_chunk = 4\n'
        b'[[security.tokens]]\ntoken = "0123456789abcdef0123"\nrole = "control"\n',
    )


def rule_seeds() -> None:
    rules = {
        "hysteresis.toml": b"""name = "fast-on-division"
when = { detector = "divisions", hysteresis = { upper = 0.8, lower = 0.4, min_dwell_s = 10 } }
actions = [
  { type = "set_interval", speedup = 4 },
  { type = "capture", stream = "raw", pre_frames = 5, post_frames = 20 },
  { type = "emit", name = "move_stage", params = { x = "{x}", y = "{y}", z_um = 1.5 } },
]
""",
        "count-window.toml": b"""name = "burst"
dry_run = true
when = { kind = "division", min_score = 0.5, roi = [0, 0, 256, 256], count = 3, window_s = 10.0, cooldown_s = 30, max_per_minute = 2 }
actions = [{ type = "set_interval", interval_ms = 25.0, duration_s = 60 }]
""",
        "emit-only.toml": b"""name = "note"
when = { detector = "activity" }
actions = [{ type = "emit", name = "log", params = { frame = "{frame}", on = true, n = 3 } }]
""",
        "tables.toml": b"""name = "capture-denoised"

[when]
detector = "divisions"
kind = "division"

[[actions]]
type = "capture"
stream = "denoised"
post_frames = 8
""",
    }
    for name, text in rules.items():
        write("rules", name, text)


def tiff_bytes(pages, **kw) -> bytes:
    buf = io.BytesIO()
    kw.setdefault("photometric", "minisblack")
    tifffile.imwrite(buf, pages, **kw)
    return buf.getvalue()


def tiff_seeds() -> None:
    rng = np.random.default_rng(9)
    u16 = rng.integers(0, 65535, size=(3, 8, 8), dtype=np.uint16)
    u8 = rng.integers(0, 255, size=(2, 8, 8), dtype=np.uint8)
    write("tiff", "u16-1page.tif", tiff_bytes(u16[0]))
    write("tiff", "u16-3pages.tif", tiff_bytes(u16))
    write("tiff", "u8-2pages-bigendian.tif", tiff_bytes(u8, byteorder=">"))
    write("tiff", "u16-2pages-deflate.tif", tiff_bytes(u16[:2], compression="zlib"))
    write("tiff", "u16-tiled-16x16.tif", tiff_bytes(np.tile(u16[0], (2, 2)), tile=(16, 16)))
    write("tiff", "u16-rows-per-strip-2.tif", tiff_bytes(u16[0], rowsperstrip=2))
    write("tiff", "bigtiff-u16.tif", tiff_bytes(u16[:2], bigtiff=True))
    write("tiff", "u16-lzw.tif", tiff_lzw_u16(u16[0]))
    write("tiff", "rgb-refused.tif", tiff_bytes(rng.integers(0, 255, (4, 4, 3), dtype=np.uint8), photometric="rgb"))


def lzw_literals(data: bytes) -> bytes:
    """TIFF LZW (compression 5) of `data` as literal codes only: Clear, one 9-bit code per
    byte, EOI (valid while the decoder's table stays below 511 entries, i.e. < 253 bytes)."""
    assert len(data) < 253
    bits = "".join(format(c, "09b") for c in [256, *data, 257])
    bits += "0" * (-len(bits) % 8)
    return bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits), 8))


def tiff_lzw_u16(pixels) -> bytes:
    """A little-endian one-page TIFF of `pixels` (2-D uint16), one LZW strip."""
    h, w = pixels.shape
    strip = lzw_literals(pixels.astype("<u2").tobytes())
    entries = [  # tag, type (3 SHORT, 4 LONG), value
        (256, 4, w), (257, 4, h), (258, 3, 16), (259, 3, 5), (262, 3, 1),
        (273, 4, 0), (277, 3, 1), (278, 4, h), (279, 4, len(strip)), (339, 3, 1),
    ]
    ifd_at = 8
    data_at = ifd_at + 2 + 12 * len(entries) + 4
    ifd = struct.pack("<H", len(entries))
    for tag, typ, value in entries:
        value = data_at if tag == 273 else value
        ifd += struct.pack("<HHI", tag, typ, 1) + (struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value))
    return b"II*\x00" + struct.pack("<I", ifd_at) + ifd + struct.pack("<I", 0) + strip


def npy_bytes(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def model_package_seeds() -> None:
    for d in sorted((ROOT / "tests" / "data" / "bioimageio").iterdir()):
        write("model_package", f"{d.name}.rdf.yaml", (d / "rdf.yaml").read_bytes())
    write("model_package", "box3.model.toml", (ROOT / "tests" / "data" / "box3.toml").read_bytes())
    write(
        "model_package",
        "tiled.model.toml",
        b'name = "t"\nweights = "net.onnx"\n[input]\nname = "in"\naxes = "byxc"\n'
        b'[output]\naxes = "yx"\n[tiling]\npreferred_tile = 64\nhalo = 8\nsize_multiple = 16\n',
    )
    write("model_package", "f4-1x1x4x4.npy", npy_bytes(np.arange(16, dtype="<f4").reshape(1, 1, 4, 4)))
    write("model_package", "u2-big-endian.npy", npy_bytes(np.arange(6, dtype=">u2").reshape(2, 3)))
    write("model_package", "f8-scalar.npy", npy_bytes(np.float64(2.5)))


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def push_msg(width, height, pixel_type, frame_number, data, timestamp_ns=0, exposure_us=0) -> bytes:
    """A length-delimited scopepilot.v1.PushFramesRequest (proto3: zero fields omitted)."""
    body = bytearray()
    for field, value in ((1, width), (2, height), (3, pixel_type), (4, frame_number), (5, timestamp_ns), (6, exposure_us)):
        if value:
            body += varint(field << 3) + varint(value)
    if data:
        body += varint((7 << 3) | 2) + varint(len(data)) + data
    return varint(len(body)) + bytes(body)


def push_frame_seeds() -> None:
    u16 = struct.pack("<16H", *range(0, 65536, 4096))
    write("push_frame", "u16-4x4.bin", push_msg(4, 4, 2, 1, u16, 1_000_000, 5000))
    write("push_frame", "u8-then-f32.bin", push_msg(3, 2, 1, 0, bytes(range(6))) + push_msg(2, 2, 3, 1, struct.pack("<4f", 0.0, 1.5, -2.0, float("nan"))))
    write("push_frame", "stream-of-4.bin", b"".join(push_msg(4, 4, 2, n, u16, n * 1000) for n in range(4)))
    write("push_frame", "short-data-refused.bin", push_msg(4, 4, 2, 7, u16[:30]))
    write("push_frame", "unknown-pixel-type-refused.bin", push_msg(4, 4, 9, 2, u16))
    write("push_frame", "zero-size-refused.bin", push_msg(0, 4, 2, 3, b""))


def main() -> int:
    config_seeds()
    rule_seeds()
    tiff_seeds()
    model_package_seeds()
    push_frame_seeds()
    total = sum(f.stat().st_size for f in CORPUS.rglob("*") if f.is_file())
    print(f"seeds written to {CORPUS}: {sum(1 for f in CORPUS.rglob('*') if f.is_file())} files, {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
