"""The HTTP side of the daemon against the real binary: Prometheus `/metrics` parsed by
Prometheus' own parser and checked against `GetStatus`, the preview WebSocket's latest-only
protocol, and the preview page itself in headless Chromium (Debian's `chromium` and
`chromium-driver`, driven by Selenium; `.ci/run` installs them).

Only 127.0.0.1 is contacted: the daemon listens on loopback and Chromium runs with background
networking, component updates and sync disabled and no proxy."""

from __future__ import annotations

import json
import os
import struct
import time
import urllib.request
from pathlib import Path

import pytest
import websocket
from prometheus_client.parser import text_string_to_metric_families

from scopepilot.v1 import (
    acquisition_pb2,
    acquisition_pb2_grpc,
    frames_pb2,
    frames_pb2_grpc,
    recording_pb2,
    recording_pb2_grpc,
)
from polling import wait_for  # noqa: E402

CONFIG = """
[api]
listen = "127.0.0.1:0"
[acquisition]
autostart = true
[source.simulated]
width = 256
height = 256
frame_rate_hz = 20.0
seed = 3
[source.simulated.scene]
initial_nuclei = 10
division_interval_s = 3.0
mitosis_duration_s = 0.5
[[stages]]
name = "smooth"
kind = "gaussian"
input = "raw"
params = { sigma = 2.0 }
[recording]
root = "recordings"
"""

# Never go through a proxy: everything here is on 127.0.0.1.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url: str) -> tuple[str, str]:
    with _opener.open(url, timeout=10) as r:
        return r.headers.get("Content-Type", ""), r.read().decode()


@pytest.fixture(scope="module")
def daemon(start_daemon):
    return start_daemon(CONFIG)


@pytest.fixture(scope="module")
def acq(daemon):
    return acquisition_pb2_grpc.AcquisitionStub(daemon.channel())


def ensure_running(acq):
    if acq.GetStatus(acquisition_pb2.GetStatusRequest()).state != acquisition_pb2.ACQUISITION_STATE_RUNNING:
        acq.Start(acquisition_pb2.StartRequest())


# --- /metrics ---------------------------------------------------------------------------------


def scrape(daemon) -> dict[str, list]:
    """Every sample of /metrics by sample name, parsed by prometheus_client."""
    content_type, text = get(daemon.http_url + "/metrics")
    assert content_type.startswith("text/plain; version=0.0.4"), content_type
    samples: dict[str, list] = {}
    families = list(text_string_to_metric_families(text))
    assert len(families) > 30, [f.name for f in families]
    for family in families:
        for s in family.samples:
            samples.setdefault(s.name, []).append(s)
    return samples


def value(samples, name: str, **labels) -> float:
    found = [s.value for s in samples[name] if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, f"{name}{labels}: {found}"
    return found[0]


def test_metrics_parse_and_match_get_status(daemon, acq):
    ensure_running(acq)
    frames = frames_pb2_grpc.FramesStub(daemon.channel())
    recording = recording_pb2_grpc.RecordingStub(daemon.channel())
    # A live subscriber and a recording, so that their metrics exist too.
    sub = frames.SubscribeFrames(frames_pb2.SubscribeFramesRequest(stage="smooth"))
    next(iter(sub))
    recording.StartRecording(recording_pb2.StartRecordingRequest(name="metrics", streams=["raw"]))

    def enough(s) -> bool:
        return s.recording.frames_written >= 5 and s.frames_acquired > 20 and s.events.events > 0

    wait_for(
        lambda: enough(acq.GetStatus(acquisition_pb2.GetStatusRequest())),
        "five recorded frames, 20 acquired and a division",
        timeout_s=30,
    )
    # Stopping freezes every counter, so that /metrics and GetStatus can be compared exactly.
    acq.Stop(acquisition_pb2.StopRequest())
    status = acq.GetStatus(acquisition_pb2.GetStatusRequest())
    m = scrape(daemon)
    sub.cancel()

    assert value(m, "scopepilot_acquisition_running") == 0
    assert value(m, "scopepilot_build_info", version=status.version, execution_provider="cpu") == 1
    for name in [
        "frames_acquired",
        "frames_lost_no_buffer",
        "frames_dropped_ring",
        "frames_late",
        "frames_rejected",
    ]:
        assert value(m, f"scopepilot_{name}_total") == getattr(status, name), name
    assert status.frames_acquired > 20
    assert value(m, "scopepilot_ring_capacity") == status.ring_capacity
    assert value(m, "scopepilot_frame_interval_seconds") == pytest.approx(
        status.frame_interval_us / 1e6
    )

    assert {s.name for s in status.stages} == {"raw", "smooth"}
    for st in status.stages:
        for field in ["frames_in", "frames_out", "frames_dropped", "errors", "frames_synthetic"]:
            got = value(m, f"scopepilot_stage_{field}_total", stage=st.name)
            assert got == getattr(st, field), (st.name, field)
        assert value(m, "scopepilot_stage_queue_capacity", stage=st.name) == st.queue_capacity
        # Latency histograms: cumulative buckets ending in +Inf == _count.
        buckets = [
            s for s in m["scopepilot_stage_latency_seconds_bucket"] if s.labels["stage"] == st.name
        ]
        counts = [s.value for s in buckets]
        assert counts == sorted(counts), counts
        assert buckets[-1].labels["le"] == "+Inf"
        count = value(m, "scopepilot_stage_latency_seconds_count", stage=st.name)
        assert buckets[-1].value == count > 0
        # The p99 GetStatus reports lies in the bucket where the histogram crosses 99 %.
        p99_s = st.latency_p99_us / 1e6
        crossing = next(float(s.labels["le"]) for s in buckets if s.value >= 0.99 * count)
        assert p99_s <= crossing, (st.name, p99_s, crossing)

    subs = {str(s.id): s for s in status.subscribers}
    assert subs, "the open subscription is listed"
    for sid, s in subs.items():
        delivered = value(m, "scopepilot_subscriber_frames_delivered_total", subscriber=sid)
        assert delivered == s.frames_delivered
        assert value(m, "scopepilot_subscriber_frames_dropped_total", subscriber=sid) == s.frames_dropped

    rec = status.recording
    assert value(m, "scopepilot_recording_active") == 0  # stopping the acquisition stopped it
    written = value(m, "scopepilot_recording_frames_written_total", stream="raw")
    assert written == rec.frames_written >= 5
    assert value(m, "scopepilot_recording_bytes_written_total", stream="raw") == rec.bytes_written
    assert value(m, "scopepilot_recording_backlog_frames") == rec.queue_frames

    ev = status.events
    assert value(m, "scopepilot_events_total") == ev.events
    assert ev.events > 0, "the simulator's ground-truth divisions are events"
    assert value(m, "scopepilot_actions_total") == ev.actions


# --- the preview WebSocket -------------------------------------------------------------------


def open_panel(daemon) -> websocket.WebSocket:
    url = daemon.http_url.replace("http://", "ws://") + "/ws/preview"
    return websocket.create_connection(
        url, timeout=10, suppress_origin=True, http_no_proxy=["127.0.0.1"]
    )


def read_frame(ws: websocket.WebSocket) -> tuple[dict, bytes]:
    opcode, data = ws.recv_data()
    assert opcode == websocket.ABNF.OPCODE_BINARY, (opcode, data[:200])
    (n,) = struct.unpack_from("<I", data)
    return json.loads(data[4 : 4 + n]), data[4 + n :]


def test_preview_socket_sends_one_newest_frame_per_credit(daemon, acq):
    ensure_running(acq)
    ws = open_panel(daemon)
    try:
        ws.send(json.dumps({"type": "config", "stream": "raw", "downsample": 2}))
        numbers = []
        for _ in range(3):
            ws.send(json.dumps({"type": "ready"}))
            header, pixels = read_frame(ws)
            assert header["stream"] == "raw"
            assert (header["width"], header["height"], header["downsample"]) == (128, 128, 2)
            assert (header["source_width"], header["source_height"]) == (256, 256)
            assert len(pixels) == 128 * 128
            assert header["display_min"] < header["display_max"]
            assert max(pixels) == 255 and min(pixels) == 0  # auto-contrast spans the range
            numbers.append(header["frame_number"])
        assert numbers == sorted(set(numbers)), "each credit brings a newer frame"

        # No credit, no frame: frames published meanwhile are skipped, not queued.
        ws.settimeout(0.5)
        with pytest.raises(websocket.WebSocketTimeoutException):
            ws.recv_data()
        ws.settimeout(10)
        time.sleep(0.5)  # ~10 frames published while the page "was busy"
        ws.send(json.dumps({"type": "ready"}))
        header, _ = read_frame(ws)
        assert header["frame_number"] >= numbers[-1] + 5, "the newest frame, not the next one"

        # A manual window is applied as given; a bad setting is refused with a reason and the
        # panel keeps working.
        ws.send(json.dumps({"type": "config", "stream": "smooth", "contrast": "manual",
                            "min": 0, "max": 65535}))
        ws.send(json.dumps({"type": "ready"}))
        header, pixels = read_frame(ws)
        assert header["stream"] == "smooth"
        assert (header["display_min"], header["display_max"]) == (0, 65535)
        ws.send(json.dumps({"type": "config", "stream": "nope"}))
        opcode, data = ws.recv_data()
        assert opcode == websocket.ABNF.OPCODE_TEXT
        error = json.loads(data)
        assert error["type"] == "error" and "nope" in error["message"], error
        assert "raw" in error["message"], "the error lists the streams that exist"
        ws.send(json.dumps({"type": "ready"}))
        header, _ = read_frame(ws)
        assert header["stream"] == "smooth"
    finally:
        ws.close()
    # An oversized message closes only that socket.
    ws = open_panel(daemon)
    try:
        ws.send(json.dumps({"type": "config", "stream": "raw" * 10_000}))
        with pytest.raises(websocket.WebSocketException):
            ws.recv_data()
    finally:
        ws.close()
    _, text = get(daemon.http_url + "/metrics")
    assert 'scopepilot_preview_frames_sent_total{stream="raw"} 4' in text
    assert daemon.alive()


def test_a_stalled_page_costs_the_pipeline_nothing(daemon, acq):
    """A page that asks for frames but stops reading them (a browser on a dead link): its
    session waits on the socket or for credits, and the pipeline goes on without a drop."""
    ensure_running(acq)
    ws = open_panel(daemon)
    try:
        ws.send(json.dumps({"type": "config", "stream": "raw", "downsample": 1}))
        for _ in range(4):
            ws.send(json.dumps({"type": "ready"}))
        before = acq.GetStatus(acquisition_pb2.GetStatusRequest())
        time.sleep(3)  # never read
        after = acq.GetStatus(acquisition_pb2.GetStatusRequest())
    finally:
        ws.close()
    assert after.frames_acquired - before.frames_acquired >= 40  # ~60 at 20 fps
    for b, a in zip(before.stages, after.stages):
        assert a.frames_out - b.frames_out >= 40, a.name
        assert a.frames_dropped == b.frames_dropped, a.name
    assert after.frames_dropped_ring == before.frames_dropped_ring
    assert after.frames_lost_no_buffer == before.frames_lost_no_buffer


# --- the page in headless Chromium -----------------------------------------------------------


def test_the_page_shows_live_images_stage_switches_and_event_markers(daemon, acq, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    ensure_running(acq)
    browser.get(daemon.http_url + "/")
    wait = WebDriverWait(browser, 30, poll_frequency=0.1)
    wait.until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-live") == "true")
    panels = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#panels .panel"))
    assert {p.get_attribute("data-stream") for p in panels} == {"raw", "smooth"}
    panel = panels[0]

    def frame_number() -> int:
        text = panel.find_element(By.CSS_SELECTOR, ".frame-number").text.strip()
        return int(text) if text.isdigit() else -1

    # The image updates: two screenshots of the canvas, a second apart, differ.
    wait.until(lambda _: frame_number() > 0)
    canvas = panel.find_element(By.CSS_SELECTOR, "canvas.preview")
    first = canvas.screenshot_as_png
    seen = frame_number()
    wait.until(lambda _: frame_number() >= seen + 10)
    assert canvas.screenshot_as_png != first, "the image did not change"

    # A stage switch: the panel now shows the other stream's frames.
    Select(panel.find_element(By.CSS_SELECTOR, "select.stream-select")).select_by_value("smooth")
    wait.until(lambda _: panel.get_attribute("data-stream") == "smooth")
    wait.until(lambda _: panel.get_attribute("data-shown-stream") == "smooth")
    seen = frame_number()
    wait.until(lambda _: frame_number() > seen)

    # An event marker appears where the simulated camera's division happens.
    marker = wait.until(
        lambda b: b.find_elements(By.CSS_SELECTOR, "#panels .panel .markers .event-marker")
    )[0]
    assert marker.get_attribute("data-kind") == "division"
    assert marker.is_displayed()

    # Per-stage counters and the chart are there.
    rows = browser.find_elements(By.CSS_SELECTOR, "#stages tbody tr[data-stage]")
    assert {r.get_attribute("data-stage") for r in rows} == {"raw", "smooth"}
    assert browser.find_element(By.ID, "chart").size["width"] > 100

    out = os.environ.get("SCOPEPILOT_SCREENSHOT")
    if out:
        browser.save_screenshot(out)
    assert daemon.alive()
    # The page's latest-only previews never cost the pipeline a frame.
    status = acq.GetStatus(acquisition_pb2.GetStatusRequest())
    assert status.frames_dropped_ring == 0
