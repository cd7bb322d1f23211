"""Tokens against the real binary: the preview page, its data and /metrics need a read token
(header or `?token=`), the typed client sends its token, a read token cannot act, and a
daemon asked to listen beyond loopback without tokens refuses to start."""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
import websocket

from conftest import daemon_binary  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))
from scopepilot_client import Scopepilot  # noqa: E402

CONTROL = "control-8d2f61c0a9b74e35"
READ = "read-3c9e7a15f02b48d6"

CONFIG = f"""
[api]
listen = "127.0.0.1:0"
[acquisition]
autostart = false
[source.simulated]
width = 128
height = 128
frame_rate_hz = 20.0
[[security.tokens]]
token = "{CONTROL}"
role = "control"
[[security.tokens]]
token = "{READ}"
role = "read"
"""

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def status_of(url: str, headers: dict | None = None) -> int:
    try:
        with _opener.open(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        assert e.code != 401 or e.headers.get("WWW-Authenticate") == "Bearer"
        return e.code


@pytest.fixture(scope="module")
def daemon(start_daemon):
    return start_daemon(CONFIG)


def test_http_needs_a_read_token_in_a_header_or_the_url(daemon):
    base = daemon.http_url
    for path in ["/", "/app.js", "/style.css"]:
        assert status_of(base + path) == 200, f"{path} holds no data"
    for path in ["/api/status", "/api/live", "/metrics"]:
        assert status_of(base + path) == 401, path
        assert status_of(base + path + "?token=wrong-token-0000000000") == 401, path
        assert status_of(base + path, {"Authorization": f"Bearer {READ}"}) == 200, path
        assert status_of(base + path + f"?token={READ}") == 200, path
    assert status_of(base + "/metrics", {"Authorization": f"Bearer {CONTROL}"}) == 200


def test_the_preview_socket_opens_with_the_page_token_only(daemon):
    url = daemon.http_url.replace("http://", "ws://") + "/ws/preview"
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(url, timeout=10, suppress_origin=True,
                                    http_no_proxy=["127.0.0.1"])
    assert e.value.status_code == 401
    with Scopepilot(daemon.address, token=CONTROL) as sp:
        sp.start("simulated")
        ws = websocket.create_connection(url + f"?token={READ}", timeout=10,
                                         suppress_origin=True, http_no_proxy=["127.0.0.1"])
        try:
            ws.send(json.dumps({"type": "config", "stream": "raw"}))
            ws.send(json.dumps({"type": "ready"}))
            opcode, data = ws.recv_data()
            assert opcode == websocket.ABNF.OPCODE_BINARY and len(data) > 128 * 128
        finally:
            ws.close()
            sp.stop()


def test_the_typed_client_sends_its_token_and_roles_hold(daemon):
    with Scopepilot(daemon.address, token=READ) as sp:
        assert sp.status().version
        with pytest.raises(grpc.RpcError) as e:
            sp.start("simulated")
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with Scopepilot(daemon.address) as sp:
        with pytest.raises(grpc.RpcError) as e:
            sp.status()
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with Scopepilot(daemon.address, token=CONTROL) as sp:
        sp.start("simulated")
        assert sp.stop().status.frames_acquired >= 0


def test_listening_beyond_loopback_without_tokens_is_refused(tmp_path):
    config = tmp_path / "open.toml"
    # Validated before anything binds: nothing listens on 0.0.0.0 here.
    config.write_text('[api]\nlisten = "0.0.0.0:0"\n[http]\nenabled = false\n')
    r = subprocess.run([str(daemon_binary()), "check-config", str(config)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "security.allow_insecure_remote" in r.stderr + r.stdout, r.stderr


def test_the_page_opened_with_a_token_streams_live(daemon, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with Scopepilot(daemon.address, token=CONTROL) as sp:
        sp.start("simulated")
        try:
            browser.get(daemon.http_url + f"/?token={READ}")
            wait = WebDriverWait(browser, 30, poll_frequency=0.1)
            # The live feed (EventSource) and a panel's image socket both carry the token.
            wait.until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-live")
                       == "true")
            panel = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#panels .panel"))[0]
            wait.until(lambda _: panel.find_element(By.CSS_SELECTOR, ".frame-number")
                       .text.strip().isdigit())
        finally:
            sp.stop()


TLS = Path(__file__).resolve().parents[1] / "data" / "tls"


def test_over_tls_both_servers_need_the_certificate_and_the_token(start_daemon):
    d = start_daemon(CONFIG + f"""
[security.tls]
cert = "{TLS / 'server.pem'}"
key = "{TLS / 'server.key'}"
""")
    https = d.http_url.replace("http://", "https://")
    trusted = ssl.create_default_context(cafile=str(TLS / "ca.pem"))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=trusted))
    with opener.open(urllib.request.Request(https + "/metrics",
                                            headers={"Authorization": f"Bearer {READ}"}),
                     timeout=10) as r:
        assert r.status == 200
        assert b"scopepilot_build_info" in r.read()
    with pytest.raises(urllib.error.HTTPError) as e:
        opener.open(https + "/metrics", timeout=10)
    assert e.value.code == 401
    # Plain HTTP to the TLS port gets no page; a client without the CA does not trust it.
    with pytest.raises((urllib.error.URLError, http.client.HTTPException, OSError)):
        _opener.open(d.http_url + "/", timeout=10).read()
    untrusting = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                             urllib.request.HTTPSHandler(
                                                 context=ssl.create_default_context()))
    with pytest.raises(urllib.error.URLError):
        untrusting.open(https + "/", timeout=10)

    ca = (TLS / "ca.pem").read_bytes()
    with Scopepilot(d.address, token=CONTROL, root_certificates=ca) as sp:
        sp.start("simulated")
        assert sp.status().source == "simulated"
        sp.stop()
    with Scopepilot(d.address, root_certificates=ca) as sp:
        with pytest.raises(grpc.RpcError) as e:
            sp.status()
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
