"""`Scopepilot`: a thin, typed client of the daemon's gRPC API.

It covers what acquisition software needs: start and stop, push frames, subscribe to
streams, events and actions, acknowledge actions and manage rules. The generated stubs are
there for the rest (`Scopepilot.stubs`).
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import grpc
import numpy as np

from . import _stubs

acq_pb2, acq_grpc = _stubs.load("acquisition")
frames_pb2, frames_grpc = _stubs.load("frames")
events_pb2, events_grpc = _stubs.load("events")
rules_pb2, rules_grpc = _stubs.load("rules")

# Only ever talk to the address given: no HTTP proxy; allow big frames.
CHANNEL_OPTIONS = [
    ("grpc.enable_http_proxy", 0),
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.max_send_message_length", 64 << 20),
]

_PIXEL_TYPES = {
    np.dtype(np.uint8): frames_pb2.PIXEL_TYPE_U8,
    np.dtype(np.uint16): frames_pb2.PIXEL_TYPE_U16,
    np.dtype(np.float32): frames_pb2.PIXEL_TYPE_F32,
}
_DTYPES = {v: k for k, v in _PIXEL_TYPES.items()}


class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
              grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call."""

    def __init__(self, token: str):
        self.header = ("authorization", f"Bearer {token}")

    def _with_token(self, details):
        metadata = list(details.metadata or []) + [self.header]
        return details._replace(metadata=metadata)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_stream_unary(self, continuation, details, requests):
        return continuation(self._with_token(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._with_token(details), requests)


@dataclass(frozen=True)
class Event:
    """Something a detector saw."""

    id: int
    kind: str
    detector: str
    stream: str
    frame_number: int
    x: float
    y: float
    score: float
    ground_truth: bool

    @classmethod
    def from_proto(cls, e) -> "Event":
        return cls(e.id, e.kind, e.detector, e.stream, e.frame_number, e.x, e.y, e.score,
                   e.ground_truth)


@dataclass(frozen=True)
class Action:
    """Something a rule asks the control software to do (acknowledge it when done)."""

    id: int
    rule: str
    name: str
    params: dict[str, str]
    phase: str  # "trigger" or "release"
    dry_run: bool
    executed_by_daemon: bool
    event: Event | None

    @classmethod
    def from_proto(cls, a) -> "Action":
        phase = "release" if a.phase == events_pb2.ACTION_PHASE_RELEASE else "trigger"
        event = Event.from_proto(a.event) if a.HasField("event") else None
        return cls(a.id, a.rule, a.name, dict(a.params), phase, a.dry_run,
                   a.executed_by_daemon, event)


@dataclass(frozen=True)
class CameraSettings:
    """A camera's exposure, gain, region and binning (None: unknown)."""

    exposure_us: float | None
    gain: float | None
    roi: tuple[int, int, int, int] | None
    binning: int | None
    applied: bool  # True: the running camera took them now; False: kept for the next start

    @classmethod
    def from_proto(cls, s, applied: bool) -> "CameraSettings":
        def opt(name):
            return getattr(s, name) if s.HasField(name) else None

        roi = (s.roi.x, s.roi.y, s.roi.width, s.roi.height) if s.HasField("roi") else None
        return cls(opt("exposure_us"), opt("gain"), roi, opt("binning"), applied)


@dataclass(frozen=True)
class ReceivedFrame:
    """A frame from a stream."""

    stream: str
    frame_number: int
    timestamp_ns: int
    pixels: np.ndarray
    synthetic: bool
    # This subscriber's frames so far: evicted because it read too slowly, and left out by
    # its own `max_fps`. The frame numbers it missed are the sum of the two.
    dropped: int = 0
    skipped: int = 0


class Stream:
    """A server stream (frames, events or actions): iterate it; `cancel()` ends it from any
    thread (iteration then stops)."""

    def __init__(self, call, convert):
        self._call = call
        self._convert = convert

    def __iter__(self):
        try:
            for item in self._call:
                yield self._convert(item)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                raise

    def cancel(self) -> None:
        self._call.cancel()


@dataclass
class PushSummary:
    """How a push stream went: what the daemon accepted, and what never left this process."""

    accepted: int = 0
    dropped_by_daemon: int = 0
    lost_no_buffer: int = 0
    dropped_here: int = 0  # frames the pusher's own queue had no room for


def push_request(pixels: np.ndarray, frame_number: int, timestamp_ns: int = 0,
                 exposure_us: int = 0):
    """A `PushFramesRequest` for a 2-D uint8 / uint16 / float32 image."""
    if pixels.ndim != 2:
        raise ValueError(f"frames must be 2-D, got shape {pixels.shape}")
    try:
        pixel_type = _PIXEL_TYPES[pixels.dtype]
    except KeyError:
        raise ValueError(f"pixel type {pixels.dtype} is not uint8, uint16 or float32") from None
    h, w = pixels.shape
    return frames_pb2.PushFramesRequest(
        width=w, height=h, pixel_type=pixel_type, frame_number=frame_number,
        timestamp_ns=timestamp_ns, exposure_us=exposure_us,
        data=np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<")).tobytes(),
    )


@dataclass
class FramePusher:
    """One `PushFrames` stream fed from a bounded queue by `push()`, which never blocks the
    caller (a camera callback): when the queue is full the frame is dropped and counted."""

    call_factory: object
    capacity: int = 16
    summary: PushSummary = field(default_factory=PushSummary)

    def __post_init__(self) -> None:
        self._queue: queue.Queue = queue.Queue(self.capacity)
        self._done = threading.Event()
        self._error: grpc.RpcError | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="scopepilot-push")
        self._thread.start()

    def _requests(self) -> Iterator:
        while True:
            item = self._queue.get()
            if item is None:
                return
            yield item

    def _run(self) -> None:
        try:
            r = self.call_factory(self._requests())
            self.summary.accepted = r.frames_accepted
            self.summary.dropped_by_daemon = r.frames_dropped
            self.summary.lost_no_buffer = r.frames_lost_no_buffer
        except grpc.RpcError as e:
            self._error = e
        finally:
            self._done.set()

    def push(self, pixels: np.ndarray, frame_number: int, timestamp_ns: int = 0,
             exposure_us: int = 0) -> bool:
        """Queue one frame; False (and counted) when the queue is full or the stream ended."""
        if self._done.is_set():
            self.summary.dropped_here += 1
            return False
        try:
            self._queue.put_nowait(push_request(pixels, frame_number, timestamp_ns, exposure_us))
            return True
        except queue.Full:
            self.summary.dropped_here += 1
            return False

    def close(self, timeout: float = 10.0) -> PushSummary:
        """End the stream and return its summary; raises the stream's error, if any."""
        self._queue.put(None)
        self._thread.join(timeout)
        if self._error is not None:
            raise self._error
        return self.summary


class Scopepilot:
    """A connection to one daemon."""

    def __init__(self, address: str = "127.0.0.1:50051", timeout: float = 10.0,
                 token: str | None = None, root_certificates: bytes | None = None,
                 server_name: str | None = None):
        """Connect to `address`; `token` is sent with every call when the daemon has
        `[security] tokens` (a `read` token may watch, a `control` token may also act).
        With `root_certificates` (PEM of the CA that signed the daemon's certificate) the
        connection uses TLS; `server_name` overrides the name checked in the certificate."""
        self.address = address
        self.timeout = timeout
        if root_certificates is not None:
            options = list(CHANNEL_OPTIONS)
            if server_name:
                options.append(("grpc.ssl_target_name_override", server_name))
            self._raw_channel = grpc.secure_channel(
                address, grpc.ssl_channel_credentials(root_certificates), options=options)
        else:
            self._raw_channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        grpc.channel_ready_future(self._raw_channel).result(timeout=timeout)
        self.channel = (grpc.intercept_channel(self._raw_channel, _Bearer(token))
                        if token else self._raw_channel)
        self.acquisition = acq_grpc.AcquisitionStub(self.channel)
        self.frames_stub = frames_grpc.FramesStub(self.channel)
        self.events_stub = events_grpc.EventsStub(self.channel)
        self.rules_stub = rules_grpc.RulesStub(self.channel)

    def close(self) -> None:
        self._raw_channel.close()

    def __enter__(self) -> "Scopepilot":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- acquisition ---------------------------------------------------------------------

    def status(self):
        """`GetStatusResponse`: state, counters of every stage, events, recording."""
        return self.acquisition.GetStatus(acq_pb2.GetStatusRequest(), timeout=self.timeout)

    def start(self, source: str = "") -> None:
        """Start acquiring from `source` ("push", "simulated", "replay"; "" = configured)."""
        self.acquisition.Start(acq_pb2.StartRequest(source=source), timeout=self.timeout)

    def stop(self):
        """Stop acquiring; returns the final `StopResponse`."""
        return self.acquisition.Stop(acq_pb2.StopRequest(), timeout=self.timeout)

    def set_frame_interval(self, interval_ms: float) -> None:
        """Change the frame interval of the daemon's own source (and of later acquisitions)."""
        self.acquisition.SetFrameInterval(
            acq_pb2.SetFrameIntervalRequest(interval_us=round(interval_ms * 1000)),
            timeout=self.timeout)

    def set_camera_settings(self, exposure_us: float | None = None, gain: float | None = None,
                            roi: tuple[int, int, int, int] | None = None,
                            binning: int | None = None) -> CameraSettings:
        """Change the GenICam camera's settings (None: leave as is; no argument: read back).

        While the camera runs, exposure and gain apply from the next frame and the result is
        what the camera reports (`applied` True); roi and binning change the frame size and
        are refused until `stop()`. While idle, everything is kept for the next `start()`.
        """
        req = acq_pb2.CameraSettings(exposure_us=exposure_us, gain=gain, binning=binning)
        if roi is not None:
            x, y, w, h = roi
            req.roi.CopyFrom(acq_pb2.Region(x=x, y=y, width=w, height=h))
        r = self.acquisition.SetCameraSettings(
            acq_pb2.SetCameraSettingsRequest(settings=req), timeout=self.timeout)
        return CameraSettings.from_proto(r.settings, r.applied)

    # --- frames --------------------------------------------------------------------------

    def push(self, frames: Iterable[tuple[np.ndarray, int]]) -> PushSummary:
        """Push `(pixels, frame_number)` pairs in one stream; returns when all are sent."""
        r = self.frames_stub.PushFrames(
            (push_request(p, n) for p, n in frames), timeout=None
        )
        return PushSummary(r.frames_accepted, r.frames_dropped, r.frames_lost_no_buffer)

    def frame_pusher(self, capacity: int = 16) -> FramePusher:
        """A background push stream for a camera callback or loop (see `FramePusher`)."""
        return FramePusher(self.frames_stub.PushFrames, capacity)

    def frames(self, stream: str, queue_capacity: int = 0, max_fps: float = 0.0) -> Stream:
        """Full-data frames (`ReceivedFrame`) of `stream` as they are produced; at most
        `max_fps` a second when given (e.g. 10 for a live view of a 100 fps camera)."""

        def convert(f) -> ReceivedFrame:
            dtype = _DTYPES[f.pixel_type].newbyteorder("<")
            pixels = np.frombuffer(f.data, dtype=dtype).reshape(f.height, f.width)
            return ReceivedFrame(f.stage, f.frame_number, f.timestamp_ns, pixels, f.synthetic,
                                 f.subscriber_dropped, f.subscriber_skipped)

        call = self.frames_stub.SubscribeFrames(frames_pb2.SubscribeFramesRequest(
            stage=stream, queue_capacity=queue_capacity, max_fps=max_fps))
        return Stream(call, convert)

    # --- events and actions --------------------------------------------------------------

    def events(self, kinds: Iterable[str] = (), detectors: Iterable[str] = (),
               include_ground_truth: bool = False) -> Stream:
        """Events (`Event`) as they happen."""
        call = self.events_stub.SubscribeEvents(events_pb2.SubscribeEventsRequest(
            kinds=list(kinds), detectors=list(detectors),
            include_ground_truth=include_ground_truth))
        return Stream(call, Event.from_proto)

    def actions(self, names: Iterable[str] = ()) -> Stream:
        """Actions (`Action`) as rules make them (all, or only these names)."""
        call = self.events_stub.SubscribeActions(
            events_pb2.SubscribeActionsRequest(names=list(names)))
        return Stream(call, Action.from_proto)

    def acknowledge(self, action: Action | int, success: bool = True, message: str = "") -> float:
        """Tell the daemon an action was carried out (or failed); returns the round trip, ms."""
        action_id = action.id if isinstance(action, Action) else action
        r = self.events_stub.AcknowledgeAction(
            events_pb2.AcknowledgeActionRequest(action_id=action_id, success=success,
                                                message=message),
            timeout=self.timeout)
        return r.round_trip_ms

    # --- rules ---------------------------------------------------------------------------

    def put_rule(self, toml: str) -> None:
        """Add or replace a rule (TOML, one `[[rules]]` table's keys)."""
        self.rules_stub.PutRule(rules_pb2.PutRuleRequest(toml=toml), timeout=self.timeout)

    def delete_rule(self, name: str) -> None:
        self.rules_stub.DeleteRule(rules_pb2.DeleteRuleRequest(name=name), timeout=self.timeout)

    def rules(self) -> dict[str, str]:
        """Installed rules: name -> TOML."""
        r = self.rules_stub.ListRules(rules_pb2.ListRulesRequest(), timeout=self.timeout)
        return {rule.name: rule.toml for rule in r.rules}
