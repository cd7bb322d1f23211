"""The typed Python client (clients/python/scopepilot_client) against the real daemon: frames
pushed with it come back bit-exact through its subscription, rules round-trip, and bad input
is refused before it leaves the process."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import grpc
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))

from scopepilot_client import Scopepilot, push_request  # noqa: E402

CONFIG = """
[api]
listen = "127.0.0.1:0"
[acquisition]
autostart = true
[source]
kind = "push"
[[stages]]
name = "bright"
kind = "detect"
input = "raw"
params = { detector = "roi_mean", event_kind = "bright", roi = [0, 0, 8, 8], threshold = 1000 }
"""


def frame(k: int) -> np.ndarray:
    return ((np.arange(48 * 64, dtype=np.uint32).reshape(48, 64) * 7 + k * 13) % 65536).astype(
        np.uint16)


def test_push_and_subscribe_round_trip_bit_exact(start_daemon):
    d = start_daemon(CONFIG)
    with Scopepilot(d.address) as sp:
        received = []
        stream = sp.frames("raw", queue_capacity=16)  # room for every frame pushed
        ready = threading.Event()

        def read() -> None:
            ready.set()
            for f in stream:
                received.append(f)
                if len(received) == 10:
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        ready.wait(5)
        # The subscription is registered once the daemon lists it.
        for _ in range(100):
            if sp.status().subscribers:
                break
            threading.Event().wait(0.02)
        summary = sp.push((frame(k), k) for k in range(10))
        reader.join(10)
        stream.cancel()
        assert summary.accepted == 10
        assert [f.frame_number for f in received] == list(range(10))
        for f in received:
            np.testing.assert_array_equal(f.pixels, frame(f.frame_number))

        sp.put_rule('name = "r"\nwhen = { detector = "bright" }\n'
                    'actions = [{ type = "emit", name = "hello" }]')
        assert "r" in sp.rules()
        with pytest.raises(grpc.RpcError) as e:
            sp.put_rule('name = "bad"\nwhen = { detector = "nope" }\nactions = []')
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        sp.delete_rule("r")
        assert "r" not in sp.rules()


def test_a_capped_subscription_counts_the_frames_it_leaves_out(start_daemon):
    d = start_daemon(CONFIG)
    with Scopepilot(d.address) as sp:
        received = []
        stream = sp.frames("raw", queue_capacity=16, max_fps=0.5)  # one frame per 2 s
        reader = threading.Thread(target=lambda: received.extend(stream), daemon=True)
        reader.start()
        for _ in range(100):
            if sp.status().subscribers:
                break
            threading.Event().wait(0.02)
        assert sp.status().subscribers[0].max_fps == 0.5
        assert sp.push((frame(k), k) for k in range(10)).accepted == 10
        # Every pushed frame is either sent to it or skipped by its cap, whatever the timing.
        sub = None
        for _ in range(250):
            sub = sp.status().subscribers[0]
            if sub.frames_delivered + sub.frames_skipped == 10:
                break
            threading.Event().wait(0.02)
        assert sub.frames_delivered + sub.frames_skipped == 10, sub
        assert sub.frames_skipped >= 5 and sub.frames_dropped == 0, sub
        stream.cancel()
        reader.join(5)
        assert received[0].frame_number == 0 and received[0].skipped == 0
        # The frame numbers it missed are exactly the ones its cap skipped.
        last = received[-1]
        assert last.frame_number + 1 - len(received) == last.skipped
        np.testing.assert_array_equal(received[0].pixels, frame(0))
        with pytest.raises(grpc.RpcError) as e:
            next(iter(sp.frames("raw", max_fps=-1)))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "max_fps" in e.value.details()


def test_push_request_refuses_what_the_daemon_could_not_read():
    with pytest.raises(ValueError, match="2-D"):
        push_request(np.zeros((2, 3, 4), np.uint16), 0)
    with pytest.raises(ValueError, match="int64"):
        push_request(np.zeros((2, 3), np.int64), 0)
    r = push_request(np.array([[1, 258]], np.uint16), 5)
    assert (r.width, r.height, r.frame_number, r.data) == (2, 1, 5, b"\x01\x00\x02\x01")


def test_camera_settings_are_typed_and_kept_for_the_next_start(start_daemon):
    # A camera is configured but not started (tests/genicam.rs drives a real one).
    config = CONFIG.replace("autostart = true", "autostart = false")
    d = start_daemon(config + '[source.genicam]\naddress = "127.0.0.1"\ngain = 1.5\n')
    with Scopepilot(d.address) as sp:
        s = sp.set_camera_settings(exposure_us=20_000, roi=(0, 8, 64, 32))
        assert not s.applied
        assert (s.exposure_us, s.gain, s.roi, s.binning) == (20_000.0, 1.5, (0, 8, 64, 32), None)
        assert sp.set_camera_settings() == s
        with pytest.raises(grpc.RpcError) as e:
            sp.set_camera_settings(binning=32)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert e.value.details().startswith("binning")
        sp.start("push")  # not a camera
        with pytest.raises(grpc.RpcError) as e:
            sp.set_camera_settings(gain=2)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "push" in e.value.details()
