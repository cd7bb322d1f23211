#!/usr/bin/env python3
"""Make docs/preview.png: the preview page in headless Chromium, on the self-driving config
sped up (4 fps, a division every ~40 s per nucleus) with a learned denoiser beside the
division detector, taken once a learned detection marker and a rule's actions are on screen.

    cargo build --release --bin scopepilot
    .venv/bin/python scripts/screenshot_preview.py [--out docs/preview.png]

Needs Debian's chromium and chromium-driver. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
READY = re.compile(r"listening grpc=\S+ http=(\S+)")


def config() -> str:
    text = (REPO / "config" / "self-driving.toml").read_text()
    for old, new in [
        ('listen = "127.0.0.1:50051"', 'listen = "127.0.0.1:0"'),
        ("frame_rate_hz = 1.0", "frame_rate_hz = 4.0"),
        ("division_interval_s = 320.0", "division_interval_s = 40.0"),
        ("initial_nuclei = 16", "initial_nuclei = 24"),
        (
            '[[stages]]\nname = "divisions"',
            '[[stages]]\nname = "denoised"\nkind = "denoise"\ninput = "raw"\n'
            'queue = { capacity = 4, policy = "drop_oldest" }\n'
            'params = { model = "models/denoise-fast-nuclei" }\n\n'
            '[[stages]]\nname = "divisions"',
        ),
    ]:
        assert old in text, f"config/self-driving.toml changed: {old!r} not found"
        text = text.replace(old, new)
    return text + '\n[http]\nlisten = "127.0.0.1:0"\n'


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "docs" / "preview.png"))
    ap.add_argument("--bin", default=str(REPO / "target" / "release" / "scopepilot"))
    args = ap.parse_args()
    os.environ["SE_OFFLINE"] = "true"
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "demo.toml"
        cfg.write_text(config())
        (Path(tmp) / "models").symlink_to(REPO / "models")
        proc = subprocess.Popen([args.bin, "serve", "--config", str(cfg)], cwd=tmp,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-proxy-server", "--window-size=1600,1000"]:
            options.add_argument(a)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            m = READY.search(proc.stdout.readline())
            assert m, "no ready line"
            driver.get(f"http://{m.group(1)}/")
            WebDriverWait(driver, 300, 0.2).until(
                lambda b: b.find_elements(By.CSS_SELECTOR, ".event-marker:not(.ground-truth)")
                and b.find_elements(By.CSS_SELECTOR, "#actions li")
            )
            time.sleep(1.5)  # the next status update shows the rule active
            shot = Path(tmp) / "shot.png"
            driver.save_screenshot(str(shot))
        finally:
            driver.quit()
            proc.terminate()
            proc.wait(timeout=10)
        # 128 colours without dithering: the page is flat colours and grey images.
        image = Image.open(shot).convert("RGB")
        image.quantize(colors=128, dither=Image.Dither.NONE).save(args.out, optimize=True)
    print(args.out)


if __name__ == "__main__":
    main()
