"""End-to-end tests of the gRPC API against the real `scopepilot serve` binary.

One daemon per module (see conftest.py); every test leaves it idle. The stubs are generated
from proto/ by conftest.py before this module is imported.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from scopepilot.v1 import acquisition_pb2 as acq_pb2
from scopepilot.v1 import acquisition_pb2_grpc as acq_grpc
from scopepilot.v1 import frames_pb2
from scopepilot.v1 import frames_pb2_grpc
from polling import wait_for  # noqa: E402

WIDTH, HEIGHT, RATE_HZ, EXPOSURE_US = 128, 128, 50.0, 5000
DEFAULT_INTERVAL_US = int(1e6 / RATE_HZ)
RPC_TIMEOUT_S = 10.0

CONFIG = f"""
[api]
listen = "127.0.0.1:0"

[acquisition]
autostart = false
ring_capacity = 64
ring_policy = "drop_oldest"

[source]
kind = "simulated"

[source.simulated]
width = {WIDTH}
height = {HEIGHT}
frame_rate_hz = {RATE_HZ}
exposure_us = {EXPOSURE_US}
seed = 7

[[stages]]
name = "gaussian"
kind = "gaussian"
input = "raw"
queue = {{ capacity = 8, policy = "drop_oldest" }}
params = {{ sigma = 1.5 }}

[subscribers]
queue_capacity = 8
max_queue_capacity = 64

[log]
filter = "info"
"""

RUNNING = acq_pb2.ACQUISITION_STATE_RUNNING
IDLE = acq_pb2.ACQUISITION_STATE_IDLE


@dataclass
class Api:
    acq: acq_grpc.AcquisitionStub
    frames: frames_pb2_grpc.FramesStub
    health: health_pb2_grpc.HealthStub

    def status(self) -> acq_pb2.GetStatusResponse:
        return self.acq.GetStatus(acq_pb2.GetStatusRequest(), timeout=RPC_TIMEOUT_S)

    def start(self, source: str) -> acq_pb2.StartResponse:
        return self.acq.Start(acq_pb2.StartRequest(source=source), timeout=RPC_TIMEOUT_S)

    def stop(self) -> acq_pb2.StopResponse:
        return self.acq.Stop(acq_pb2.StopRequest(), timeout=RPC_TIMEOUT_S)

    def set_interval(self, us: int) -> acq_pb2.SetFrameIntervalResponse:
        return self.acq.SetFrameInterval(
            acq_pb2.SetFrameIntervalRequest(interval_us=us), timeout=RPC_TIMEOUT_S
        )


@pytest.fixture(scope="module")
def daemon(start_daemon):
    return start_daemon(CONFIG)


@pytest.fixture(scope="module")
def api(daemon) -> Api:
    ch = daemon.channel()
    return Api(
        acq=acq_grpc.AcquisitionStub(ch),
        frames=frames_pb2_grpc.FramesStub(ch),
        health=health_pb2_grpc.HealthStub(ch),
    )


# Subscriptions opened by the current test (see `subscribe`); cancelled when it ends.
_open_calls: list[grpc.Call] = []


@pytest.fixture(autouse=True)
def leave_idle(daemon, api):
    """Every test starts and ends with the daemon alive, idle and without subscribers."""
    assert daemon.alive(), f"daemon died; stderr:\n{daemon.stderr_tail()}"
    if api.status().state == RUNNING:
        api.stop()
    yield
    while _open_calls:
        _open_calls.pop().cancel()
    assert daemon.alive(), f"daemon died; stderr:\n{daemon.stderr_tail()}"
    try:
        api.stop()
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, e
    assert api.status().state == IDLE
    wait_for(lambda: not api.status().subscribers, what="cancelled subscriptions to go away")


def rpc_error(fn, *args, **kwargs) -> grpc.RpcError:
    """Call fn, which must fail with an RpcError; return it."""
    with pytest.raises(grpc.RpcError) as info:
        fn(*args, **kwargs)
    return info.value


def stage(status: acq_pb2.GetStatusResponse, name: str) -> acq_pb2.StageStatus:
    for s in status.stages:
        if s.name == name:
            return s
    raise AssertionError(f"no stage {name!r} in status: {[s.name for s in status.stages]}")


@dataclass
class Subscriber:
    """A SubscribeFrames call read on a background thread."""

    call: grpc.Call
    want: int
    frames: list = field(default_factory=list)
    error: grpc.RpcError | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        try:
            for frame in self.call:
                self.frames.append(frame)
                if len(self.frames) >= self.want:
                    break
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                self.error = e
        finally:
            self.done.set()

    def wait(self, timeout_s: float = 10.0) -> list:
        finished = self.done.wait(timeout_s)
        self.call.cancel()
        assert self.error is None, f"subscription failed: {self.error}"
        assert finished, f"got only {len(self.frames)} of {self.want} frames in {timeout_s} s"
        return self.frames


def subscriber_ids(api: Api) -> set[int]:
    return {s.id for s in api.status().subscribers}


def subscribe(api: Api, want: int, registered: bool = False, **request) -> Subscriber:
    """Open SubscribeFrames(**request) and read up to `want` frames on a thread. With
    `registered`, return only once the daemon lists the new subscriber (so that no frame
    produced afterwards can be missed)."""
    before = subscriber_ids(api) if registered else set()
    call = api.frames.SubscribeFrames(frames_pb2.SubscribeFramesRequest(**request))
    _open_calls.append(call)
    sub = Subscriber(call=call, want=want)
    threading.Thread(target=sub.run, daemon=True).start()
    if registered:
        wait_for(lambda: subscriber_ids(api) - before, what="the new subscriber to register")
    return sub


# ---------------------------------------------------------------------------------------------


def test_health_reports_serving(api):
    Req = health_pb2.HealthCheckRequest
    serving = health_pb2.HealthCheckResponse.SERVING
    assert api.health.Check(Req(service=""), timeout=RPC_TIMEOUT_S).status == serving
    for service in ("scopepilot.v1.Acquisition", "scopepilot.v1.Frames"):
        assert api.health.Check(Req(service=service), timeout=RPC_TIMEOUT_S).status == serving
    err = rpc_error(api.health.Check, Req(service="no.such.Service"), timeout=RPC_TIMEOUT_S)
    assert err.code() == grpc.StatusCode.NOT_FOUND


def test_start_status_stop_lifecycle(daemon, api):
    idle = api.status()
    assert idle.state == IDLE  # autostart = false
    assert idle.version == daemon.version and idle.version != ""

    started = api.start("simulated").status
    assert started.state == RUNNING
    assert started.source == "simulated"
    assert (started.width, started.height) == (WIDTH, HEIGHT)
    assert started.pixel_type == frames_pb2.PIXEL_TYPE_U16
    assert started.frame_interval_us == DEFAULT_INTERVAL_US

    first = wait_for(
        lambda: (s := api.status()).frames_acquired >= 3 and stage(s, "gaussian").frames_out >= 2 and s,
        what="the first frames",
    )
    time.sleep(0.3)  # ~15 frames at 50 fps
    second = api.status()
    assert second.state == RUNNING
    assert second.version != ""
    assert second.frames_acquired > first.frames_acquired
    g1, g2 = stage(first, "gaussian"), stage(second, "gaussian")
    assert (g2.kind, g2.input) == ("gaussian", "raw")
    assert g2.frames_out > g1.frames_out
    assert [s.name for s in second.stages] == ["raw", "gaussian"]
    assert second.acquisition_time_s > first.acquisition_time_s > 0
    assert second.uptime_s >= second.acquisition_time_s

    err = rpc_error(api.start, "simulated")
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert api.status().state == RUNNING  # the failed Start changed nothing

    stopped = api.stop().status
    assert stopped.state == IDLE
    assert stopped.frames_acquired >= second.frames_acquired
    after = api.status()
    assert after.state == IDLE
    assert after.source == "simulated"  # counters of the last run stay readable
    time.sleep(0.1)
    assert api.status().frames_acquired == after.frames_acquired  # nothing is acquired now

    err = rpc_error(api.stop)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    err = rpc_error(api.start, "no-such-source")
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert api.status().state == IDLE


def test_subscribe_full_frames_from_gaussian_stage(api):
    api.start("")  # the configured default: simulated
    sub = subscribe(api, 5, stage="gaussian", format=frames_pb2.FRAME_FORMAT_FULL)
    frames = sub.wait()
    numbers = [f.frame_number for f in frames]
    assert numbers == sorted(set(numbers)), f"frame numbers not increasing: {numbers}"
    for f in frames:
        assert f.stage == "gaussian"
        assert (f.width, f.height) == (WIDTH, HEIGHT)
        assert f.pixel_type == frames_pb2.PIXEL_TYPE_F32
        assert len(f.data) == WIDTH * HEIGHT * 4
        img = np.frombuffer(f.data, dtype="<f4").reshape(f.height, f.width)
        assert np.isfinite(img).all()
        assert img.std() > 0, "a blank frame"
        assert not f.synthetic
        assert f.exposure_us == EXPOSURE_US
    # The Gaussian output is smoother than the raw camera frame: neighbouring pixels differ
    # less than in raw noise. Compare against a raw frame.
    raw = subscribe(api, 1, stage="raw").wait()[0]
    assert raw.pixel_type == frames_pb2.PIXEL_TYPE_U16 and len(raw.data) == WIDTH * HEIGHT * 2
    raw_img = np.frombuffer(raw.data, dtype="<u2").reshape(HEIGHT, WIDTH).astype(np.float64)
    smooth = np.frombuffer(frames[-1].data, dtype="<f4").reshape(HEIGHT, WIDTH)
    rough = lambda a: np.abs(np.diff(a, axis=1)).mean() / (a.std() + 1e-9)  # noqa: E731
    assert rough(smooth) < rough(raw_img)


def test_subscribe_preview_8bit_downsampled(api):
    api.start("simulated")
    sub = subscribe(
        api, 3, stage="gaussian", format=frames_pb2.FRAME_FORMAT_PREVIEW_8BIT, downsample=2
    )
    for f in sub.wait():
        assert (f.width, f.height) == (WIDTH // 2, HEIGHT // 2)
        assert f.pixel_type == frames_pb2.PIXEL_TYPE_U8
        assert len(f.data) == (WIDTH // 2) * (HEIGHT // 2)
        assert f.display_min < f.display_max
        img = np.frombuffer(f.data, dtype=np.uint8)
        assert img.max() > img.min(), "the auto-contrast window maps everything to one value"


def test_subscribe_errors(api):
    err = rpc_error(
        lambda: next(api.frames.SubscribeFrames(
            frames_pb2.SubscribeFramesRequest(stage="no-such-stage"), timeout=RPC_TIMEOUT_S
        ))
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert "gaussian" in err.details()  # the message lists the streams that exist
    err = rpc_error(
        lambda: next(api.frames.SubscribeFrames(
            frames_pb2.SubscribeFramesRequest(stage="raw", queue_capacity=65),
            timeout=RPC_TIMEOUT_S,
        ))
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


# ---------------------------------------------------------------------------------------------
# PushFrames

PW, PH = 32, 24  # pushed frame size


def ramp(i: int) -> np.ndarray:
    """A distinctive uint16 frame per index: a ramp plus an offset."""
    return (np.arange(PW * PH, dtype=np.uint16).reshape(PH, PW) * 7 + i * 1000).astype(np.uint16)


def push_request(number: int, pixels: np.ndarray, **overrides) -> frames_pb2.PushFramesRequest:
    fields = dict(
        width=pixels.shape[1],
        height=pixels.shape[0],
        pixel_type=frames_pb2.PIXEL_TYPE_U16,
        frame_number=number,
        timestamp_ns=1_000_000 * number,
        exposure_us=1234,
        data=pixels.astype("<u2").tobytes(),
    )
    fields.update(overrides)
    return frames_pb2.PushFramesRequest(**fields)


def push(api: Api, requests) -> frames_pb2.PushFramesResponse:
    return api.frames.PushFrames(iter(list(requests)), timeout=RPC_TIMEOUT_S)


def test_push_frames_round_trip(api):
    assert api.start("push").status.source == "push"
    sub = subscribe(
        api, 10, registered=True, stage="raw", format=frames_pb2.FRAME_FORMAT_FULL, queue_capacity=32
    )

    resp = push(api, (push_request(100 + i, ramp(i)) for i in range(10)))
    assert resp.frames_accepted == 10
    assert resp.frames_dropped == 0 and resp.frames_lost_no_buffer == 0

    frames = sub.wait()
    assert [f.frame_number for f in frames] == list(range(100, 110))
    for i, f in enumerate(frames):
        assert (f.width, f.height, f.pixel_type) == (PW, PH, frames_pb2.PIXEL_TYPE_U16)
        got = np.frombuffer(f.data, dtype="<u2").reshape(f.height, f.width)
        np.testing.assert_array_equal(got, ramp(i), err_msg=f"pixels of frame {100 + i}")
        assert f.timestamp_ns == 1_000_000 * (100 + i)
        assert f.exposure_us == 1234
        assert f.subscriber_dropped == 0

    def all_through(s: acq_pb2.GetStatusResponse) -> bool:
        # The gaussian stage's queue (8, drop_oldest) may drop some of a 10-frame burst; every
        # frame must still be accounted for as processed or dropped.
        g = stage(s, "gaussian")
        return (
            s.frames_acquired == 10
            and stage(s, "raw").frames_out == 10
            and g.frames_out + g.frames_dropped + g.errors == 10
        )

    status = wait_for(lambda: all_through(s := api.status()) and s, what="10 frames through")
    assert status.source == "push" and status.frames_rejected == 0
    assert stage(status, "gaussian").frames_out >= 8  # at most the overflow of its queue is lost
    assert stage(status, "gaussian").errors == 0
    # The push source's timing belongs to the client.
    err = rpc_error(api.set_interval, 10_000)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_push_frames_rejects_malformed_frames(daemon, api):
    # Pushing while idle is refused.
    err = rpc_error(push, api, [push_request(1, ramp(0))])
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION

    api.start("push")
    sub = subscribe(api, 3, registered=True, stage="raw", queue_capacity=32)

    good = [push_request(200 + i, ramp(i)) for i in range(3)]
    short = push_request(203, ramp(3), data=ramp(3).astype("<u2").tobytes()[:-2])
    err = rpc_error(push, api, [*good, short, push_request(204, ramp(4))])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    expected = PW * PH * 2
    assert str(expected) in err.details(), err.details()  # names the expected byte count
    assert "expected" in err.details() and "203" in err.details(), err.details()

    # The frames before the bad one were kept and delivered; the daemon is fine.
    assert [f.frame_number for f in sub.wait()] == [200, 201, 202]
    assert daemon.alive()
    status = wait_for(lambda: (s := api.status()).frames_acquired == 3 and s, what="3 frames")
    assert status.state == RUNNING
    assert status.frames_rejected == 1

    # Unknown pixel type.
    err = rpc_error(push, api, [push_request(300, ramp(0), pixel_type=7)])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "7" in err.details(), err.details()
    # Unset pixel type, zero size.
    err = rpc_error(push, api, [push_request(301, ramp(0), pixel_type=0)])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    err = rpc_error(push, api, [push_request(302, ramp(0), width=0)])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT

    # Still answering and still accepting good frames.
    assert push(api, [push_request(303, ramp(5))]).frames_accepted == 1
    status = wait_for(lambda: (s := api.status()).frames_acquired == 4 and s, what="4 frames")
    assert status.state == RUNNING


# ---------------------------------------------------------------------------------------------
# SetFrameInterval


@pytest.fixture
def restore_interval(api):
    yield
    api.set_interval(DEFAULT_INTERVAL_US)


def frames_in(api: Api, seconds: float) -> int:
    before = api.status().frames_acquired
    time.sleep(seconds)
    return api.status().frames_acquired - before


def test_set_frame_interval(api, restore_interval):
    api.start("simulated")
    assert api.status().frame_interval_us == DEFAULT_INTERVAL_US

    assert api.set_interval(200_000).interval_us == 200_000  # 5 fps
    assert api.status().frame_interval_us == 200_000
    time.sleep(0.25)  # let the frame in flight at the old pace pass
    slow = frames_in(api, 1.0)
    assert 3 <= slow <= 8, f"{slow} frames in 1 s at 5 fps"

    assert api.set_interval(10_000).interval_us == 10_000  # 100 fps
    assert api.status().frame_interval_us == 10_000
    time.sleep(0.25)
    fast = frames_in(api, 1.0)
    # Only "clearly faster than 5 fps": speed itself is for benchmarks, not tests (a loaded
    # 2-core machine measured 33 of the 100).
    assert fast >= 12 and fast >= 2 * slow, f"{fast} frames in 1 s at 100 fps (5 fps: {slow})"

    for bad in (0, 99, 3_600_000_001):
        err = rpc_error(api.set_interval, bad)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
    assert api.status().frame_interval_us == 10_000  # unchanged by the refused calls


# ---------------------------------------------------------------------------------------------
# Push bookkeeping: the pushed format and every refused frame show in GetStatus.


def test_status_reports_push_frame_format(api):
    api.start("push")
    assert push(api, [push_request(1, ramp(0))]).frames_accepted == 1
    status = wait_for(lambda: (s := api.status()).frames_acquired == 1 and s, what="1 frame")
    assert (status.width, status.height, status.pixel_type) == (
        PW,
        PH,
        frames_pb2.PIXEL_TYPE_U16,
    )


def test_bad_pixel_type_counts_as_rejected(api):
    api.start("push")
    for pixel_type in (7, 0):
        err = rpc_error(push, api, [push_request(1, ramp(0), pixel_type=pixel_type)])
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert api.status().frames_rejected == 2
