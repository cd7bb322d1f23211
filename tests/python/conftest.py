"""Shared fixtures for the Python API tests.

* The gRPC stubs are generated from ``proto/`` by the typed client's generator
  (``clients/python/scopepilot_client/_stubs.py``, into its gitignored ``_generated/``) when
  this file is imported, and again whenever a ``.proto`` changes, so the tests always match
  the protos in the tree.
* ``Daemon`` starts the real ``scopepilot serve`` binary (``$SCOPEPILOT_BIN``, default
  ``target/debug/scopepilot``) with a temporary config listening on ``127.0.0.1:0`` (gRPC and,
  unless the config says otherwise, the HTTP preview page) and parses the ephemeral ports
  from its one ``listening`` line on stdout. It is always stopped
  (SIGTERM, then SIGKILL) when the fixture ends.

Only 127.0.0.1 is ever contacted; HTTP proxies are disabled on every channel.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import pytest

REPO = Path(__file__).resolve().parents[2]
READY_RE = re.compile(
    r"^scopepilot (\S+) listening grpc=(127\.0\.0\.1:(\d+))(?: http=(127\.0\.0\.1:\d+))?$"
)
STARTUP_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0

# Channel options: never go through a proxy (we only talk to 127.0.0.1), allow big frames.
CHANNEL_OPTIONS = [
    ("grpc.enable_http_proxy", 0),
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.max_send_message_length", 64 << 20),
]


# One stub generator for tests and clients: the typed client's (clients/python).
sys.path.insert(0, str(REPO / "clients" / "python"))
from scopepilot_client import _stubs  # noqa: E402

for _service in _stubs.SERVICES:
    _stubs.load(_service)


def daemon_binary() -> Path:
    path = Path(os.environ.get("SCOPEPILOT_BIN", REPO / "target" / "debug" / "scopepilot"))
    if not path.is_absolute():
        path = REPO / path
    if not path.is_file():
        pytest.exit(
            f"scopepilot binary not found at {path}: run `cargo build` first "
            "(or set SCOPEPILOT_BIN)",
            returncode=1,
        )
    return path


class Daemon:
    """A running ``scopepilot serve`` process."""

    def __init__(self, config_toml: str, workdir: Path):
        self.workdir = workdir
        self.config_path = workdir / "scopepilot.toml"
        if "[http]" not in config_toml:
            # The preview page on an ephemeral port too, so that daemons never collide.
            config_toml += '\n[http]\nlisten = "127.0.0.1:0"\n'
        self.config_path.write_text(config_toml)
        self.stderr_path = workdir / "scopepilot.stderr.log"
        self._stderr = open(self.stderr_path, "wb")
        self.channels: list[grpc.Channel] = []
        env = dict(os.environ)
        env.pop("RUST_LOG", None)
        self.proc = subprocess.Popen(
            [str(daemon_binary()), "serve", "--config", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            cwd=workdir,
        )
        self.version, self.address, self.port, self.http_address = self._wait_ready()

    @property
    def http_url(self) -> str:
        """Base URL of the preview page and metrics (``http://127.0.0.1:PORT``)."""
        if self.http_address is None:
            raise RuntimeError("this daemon does not serve HTTP ([http] enabled = false)")
        return f"http://{self.http_address}"

    def _wait_ready(self) -> tuple[str, str, int, str | None]:
        # Read the ready line on a thread so that a hung daemon cannot hang the tests.
        result: dict[str, str] = {}

        def read() -> None:
            assert self.proc.stdout is not None
            result["line"] = self.proc.stdout.readline().decode(errors="replace")

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(STARTUP_TIMEOUT_S)
        line = result.get("line", "").strip()
        m = READY_RE.match(line)
        if not m:
            exited = self.proc.poll()
            self.stop()
            why = (
                f"exited with code {exited}"
                if exited is not None
                else f"no ready line within {STARTUP_TIMEOUT_S} s, killed"
            )
            raise RuntimeError(
                f"scopepilot failed to start ({why}); first stdout line {line!r}; "
                f"stderr:\n{self.stderr_tail()}"
            )
        return m.group(1), m.group(2), int(m.group(3)), m.group(4)

    def channel(self) -> grpc.Channel:
        ch = grpc.insecure_channel(self.address, options=CHANNEL_OPTIONS)
        grpc.channel_ready_future(ch).result(timeout=10)
        self.channels.append(ch)
        return ch

    def stderr_tail(self, lines: int = 40) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        text = self.stderr_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after a grace period. Returns the exit code."""
        for ch in self.channels:
            ch.close()
        self.channels.clear()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def start_daemon():
    """Factory: ``start_daemon(config_toml)`` -> Daemon; every daemon is stopped at module end."""
    started: list[Daemon] = []
    dirs: list[tempfile.TemporaryDirectory] = []

    def start(config_toml: str) -> Daemon:
        d = tempfile.TemporaryDirectory(prefix="scopepilot-pytest-")
        dirs.append(d)
        daemon = Daemon(config_toml, Path(d.name))
        started.append(daemon)
        return daemon

    try:
        yield start
    finally:
        for daemon in started:
            daemon.stop()
        for d in dirs:
            d.cleanup()


# --- headless Chromium (scripts/setup-chromium.sh installs Debian's) --------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def chromium_available() -> bool:
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


@pytest.fixture(scope="module")
def browser():
    if not chromium_available():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} are required in CI (.ci/run installs them)")
        pytest.skip("Debian chromium and chromium-driver are not installed")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-proxy-server",
        "--window-size=1500,1000",
    ]:
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
