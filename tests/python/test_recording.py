"""Recording to OME-Zarr, end to end: frames pushed over gRPC are recorded by the real
`scopepilot serve` binary and read back with independent readers (zarr-python 3 and
ome-zarr-py), pixel for pixel and with their per-frame metadata."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time

import grpc
import numpy as np
import pytest
import zarr

from scopepilot.v1 import acquisition_pb2 as acq_pb2
from scopepilot.v1 import acquisition_pb2_grpc as acq_grpc
from scopepilot.v1 import frames_pb2
from scopepilot.v1 import frames_pb2_grpc
from scopepilot.v1 import recording_pb2 as rec_pb2
from scopepilot.v1 import recording_pb2_grpc as rec_grpc
from polling import wait_for  # noqa: E402

TIMEOUT_S = 10.0
W, H = 40, 24

CONFIG = """
[api]
listen = "127.0.0.1:0"

[acquisition]
ring_capacity = 64

[source]
kind = "push"

[[stages]]
name = "copy"
kind = "passthrough"
input = "raw"
queue = { capacity = 64, policy = "block" }

[recording]
root = "recordings"
compression = "zstd"
frames_per_chunk = 4
pixel_size_um = 0.65
"""


class Api:
    def __init__(self, daemon):
        ch = daemon.channel()
        self.acq = acq_grpc.AcquisitionStub(ch)
        self.frames = frames_pb2_grpc.FramesStub(ch)
        self.rec = rec_grpc.RecordingStub(ch)

    def status(self):
        return self.acq.GetStatus(acq_pb2.GetStatusRequest(), timeout=TIMEOUT_S)

    def start_recording(self, name, streams=()):
        return self.rec.StartRecording(
            rec_pb2.StartRecordingRequest(name=name, streams=list(streams)), timeout=TIMEOUT_S
        )

    def stop_recording(self):
        return self.rec.StopRecording(rec_pb2.StopRecordingRequest(), timeout=TIMEOUT_S)


@pytest.fixture(scope="module")
def daemon(start_daemon):
    return start_daemon(CONFIG)


@pytest.fixture(scope="module")
def api(daemon):
    return Api(daemon)


def frame(i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    return rng.integers(0, 65535, size=(H, W), dtype=np.uint16)


def push_request(number: int, pixels: np.ndarray) -> frames_pb2.PushFramesRequest:
    return frames_pb2.PushFramesRequest(
        width=W,
        height=H,
        pixel_type=frames_pb2.PIXEL_TYPE_U16,
        frame_number=number,
        timestamp_ns=5_000_000 + 20_000_000 * number,
        exposure_us=1000 + number,
        data=pixels.astype("<u2").tobytes(),
    )


def stage(status, name):
    return next(s for s in status.stages if s.name == name)


def test_recording_reads_back_with_zarr_and_ome_zarr(daemon, api):
    api.acq.Start(acq_pb2.StartRequest(source="push"), timeout=TIMEOUT_S)
    started = api.start_recording("run-1", ["raw", "copy"]).status
    assert started.state == rec_pb2.RECORDING_STATE_RECORDING
    assert started.path.endswith("run-1.zarr")

    n = 23  # not a multiple of frames_per_chunk: the last chunk is partial
    numbers = [100 + i for i in range(n)]
    before_ns = time.time_ns()
    resp = api.frames.PushFrames(
        iter([push_request(k, frame(k)) for k in numbers]), timeout=TIMEOUT_S
    )
    assert resp.frames_accepted == n
    # Frames become readable at checkpoints once their chunk is full; the last, partial
    # chunk (3 frames) is written when the recording stops.
    full = n // 4 * 4
    wait_for(lambda: api.status().recording.frames_written == 2 * full, "full chunks written")

    final = api.stop_recording().status
    assert final.state == rec_pb2.RECORDING_STATE_STOPPED, final
    assert final.frames_written == 2 * n and final.frames_not_recorded == 0, final
    assert final.bytes_written == 2 * n * W * H * 2
    assert [s.name for s in final.streams] == ["raw", "copy"]
    # Status keeps the last recording; the acquisition is still running.
    st = api.status()
    assert st.recording.name == "run-1" and st.recording.state == rec_pb2.RECORDING_STATE_STOPPED
    assert st.state == acq_pb2.ACQUISITION_STATE_RUNNING

    path = daemon.workdir / "recordings" / "run-1.zarr"
    want = np.stack([frame(k) for k in numbers])
    root = zarr.open_group(str(path), mode="r")
    assert root.attrs["scopepilot"]["complete"] is True
    for stream in ("raw", "copy"):
        g = root[stream]
        img = g["0"]
        assert img.shape == (n, H, W) and img.dtype == np.uint16
        np.testing.assert_array_equal(img[:], want)
        assert list(g["frame_number"][:]) == numbers
        assert list(g["camera_timestamp_ns"][:]) == [5_000_000 + 20_000_000 * k for k in numbers]
        assert list(g["exposure_us"][:]) == [1000 + k for k in numbers]
        assert not g["synthetic"][:].any()
        arrival = g["arrival_unix_ns"][:]
        assert np.all(np.diff(arrival.astype(np.int64)) >= 0)
        assert before_ns - 5e9 < arrival[0] < time.time_ns()
        ome = g.attrs["ome"]
        assert ome["version"] == "0.5"
        ms = ome["multiscales"][0]
        assert [a["name"] for a in ms["axes"]] == ["t", "y", "x"]
        assert ms["axes"][0]["unit"] == "second" and ms["axes"][1]["unit"] == "micrometer"
        scale = ms["datasets"][0]["coordinateTransformations"][0]["scale"]
        # Push source: the frame interval is measured from the camera timestamps (20 ms).
        assert scale == pytest.approx([0.020, 0.65, 0.65])

    # An independent OME-Zarr reader sees the same image with its axes.
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Multiscales, Reader

    nodes = list(Reader(parse_url(str(path / "raw")))())
    image = next(node for node in nodes if node.load(Multiscales))
    np.testing.assert_array_equal(np.asarray(image.data[0]), want)
    assert [a["name"] for a in image.metadata["axes"]] == ["t", "y", "x"]

    api.acq.Stop(acq_pb2.StopRequest(), timeout=TIMEOUT_S)


def test_recording_errors_leave_the_acquisition_running(daemon, api):
    api.acq.Start(acq_pb2.StartRequest(source="push"), timeout=TIMEOUT_S)
    (daemon.workdir / "recordings" / "taken.zarr").mkdir(parents=True)
    cases = [
        ("taken", [], grpc.StatusCode.ALREADY_EXISTS),
        ("../escape", [], grpc.StatusCode.INVALID_ARGUMENT),
        ("", [], grpc.StatusCode.INVALID_ARGUMENT),
        ("ok-name", ["nope"], grpc.StatusCode.INVALID_ARGUMENT),
    ]
    for name, streams, code in cases:
        with pytest.raises(grpc.RpcError) as info:
            api.start_recording(name, streams)
        assert info.value.code() == code, (name, info.value.details())
        assert api.status().state == acq_pb2.ACQUISITION_STATE_RUNNING
    with pytest.raises(grpc.RpcError) as info:
        api.stop_recording()
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # Stopping the acquisition finishes a recording in progress.
    api.start_recording("until-stop")
    api.frames.PushFrames(iter([push_request(k, frame(k)) for k in range(5)]), timeout=TIMEOUT_S)
    wait_for(lambda: stage(api.status(), "raw").frames_out == 5, "frames ingested")
    stopped = api.acq.Stop(acq_pb2.StopRequest(), timeout=TIMEOUT_S).status
    assert stopped.recording.state == rec_pb2.RECORDING_STATE_STOPPED
    assert stopped.recording.frames_written == 5
    g = zarr.open_group(str(daemon.workdir / "recordings" / "until-stop.zarr" / "raw"), mode="r")
    np.testing.assert_array_equal(g["0"][:], np.stack([frame(k) for k in range(5)]))


# ---------------------------------------------------------------------------------------------
# Disk full: a 1 MiB tmpfs in a private mount namespace (nothing leaks to the host). Needs
# root and unshare(1); skipped otherwise.


def _can_mount_tmpfs(tmp_path) -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    r = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         f"mount -t tmpfs -o size=1m none {probe}"],
        capture_output=True,
    )
    return r.returncode == 0


def test_a_full_disk_stops_the_recording_with_exact_counts_and_a_readable_store(tmp_path):
    if not _can_mount_tmpfs(tmp_path):
        pytest.skip("needs root and unshare -m to mount a small tmpfs")
    import conftest

    full = tmp_path / "full"
    full.mkdir()
    cfg = CONFIG.replace('root = "recordings"', f'root = "{full}"').replace(
        'compression = "zstd"', 'compression = "none"').replace(
        "frames_per_chunk = 4", "frames_per_chunk = 1\ncheckpoint_ms = 10")
    # The daemon runs in its own mount namespace where `full` is a 1 MiB tmpfs; the test
    # reads that view through /proc/<pid>/root.
    bin_path = conftest.daemon_binary()
    cfg_path = tmp_path / "full.toml"
    cfg_path.write_text(cfg)
    proc = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         f'mount -t tmpfs -o size=1m none "{full}" && exec "{bin_path}" serve --config "{cfg_path}"'],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
    )
    try:
        line = proc.stdout.readline().decode()
        m = conftest.READY_RE.match(line.strip())
        assert m, f"daemon did not start: {line!r} {proc.stderr.read1().decode()}"
        ch = grpc.insecure_channel(m.group(2), options=conftest.CHANNEL_OPTIONS)
        grpc.channel_ready_future(ch).result(timeout=10)
        acq = acq_grpc.AcquisitionStub(ch)
        rec = rec_grpc.RecordingStub(ch)
        frames = frames_pb2_grpc.FramesStub(ch)
        acq.Start(acq_pb2.StartRequest(source="push"), timeout=TIMEOUT_S)
        rec.StartRecording(rec_pb2.StartRecordingRequest(name="big"), timeout=TIMEOUT_S)
        # 120 frames of 40x24 u16 = 1920 bytes each, 4 KiB pages on tmpfs: ~250 fit at most
        # with their metadata; push frames until the recording fails.
        pushed = 0
        for batch in range(40):
            reqs = [push_request(pushed + k, frame(pushed + k)) for k in range(20)]
            frames.PushFrames(iter(reqs), timeout=TIMEOUT_S)
            pushed += 20
            st = acq.GetStatus(acq_pb2.GetStatusRequest(), timeout=TIMEOUT_S)
            if st.recording.state == rec_pb2.RECORDING_STATE_FAILED:
                break
            time.sleep(0.05)
        st = wait_for(
            lambda: (s := acq.GetStatus(acq_pb2.GetStatusRequest(), timeout=TIMEOUT_S)).recording.state
            == rec_pb2.RECORDING_STATE_FAILED and s,
            "the recording to fail",
        )
        assert "space" in st.recording.error.lower(), st.recording.error
        assert st.state == acq_pb2.ACQUISITION_STATE_RUNNING
        wait_for(lambda: stage(acq.GetStatus(acq_pb2.GetStatusRequest()), "raw").frames_out == pushed,
                 "every pushed frame ingested")
        final = rec.StopRecording(rec_pb2.StopRecordingRequest(), timeout=TIMEOUT_S).status
        assert final.state == rec_pb2.RECORDING_STATE_FAILED
        raw = final.streams[0]
        written = raw.frames_written
        assert 0 < written < pushed
        # Exact: every frame offered while recording is either readable or not recorded.
        store = f"/proc/{proc.pid}/root{full}/big.zarr"
        g = zarr.open_group(store + "/raw", mode="r")
        assert g["0"].shape == (written, H, W)
        np.testing.assert_array_equal(g["0"][:], np.stack([frame(k) for k in range(written)]))
        assert list(g["frame_number"][:]) == list(range(written))
        offered = written + raw.frames_not_recorded
        print(f"disk full: pushed {pushed}, written {written}, not recorded {raw.frames_not_recorded}")
        assert offered <= pushed and raw.frames_not_recorded > 0
        # The acquisition goes on: more frames are still accepted.
        assert frames.PushFrames(iter([push_request(10_000, frame(0))]), timeout=TIMEOUT_S).frames_accepted == 1
        acq.Stop(acq_pb2.StopRequest(), timeout=TIMEOUT_S)
        ch.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_killed_daemon_leaves_the_frames_written_readable(start_daemon):
    """SIGKILL mid-recording: the store exposes complete frames only, with their metadata."""
    cfg = CONFIG.replace("frames_per_chunk = 4", "frames_per_chunk = 1\ncheckpoint_ms = 20")
    d = start_daemon(cfg)
    api = Api(d)
    api.acq.Start(acq_pb2.StartRequest(source="push"), timeout=TIMEOUT_S)
    api.start_recording("crash")
    n = 30
    api.frames.PushFrames(iter([push_request(k, frame(k)) for k in range(n)]), timeout=TIMEOUT_S)
    wait_for(lambda: api.status().recording.frames_written == n, "frames written")
    # Keep frames flowing while the daemon dies.
    more = [push_request(k, frame(k)) for k in range(n, n + 200)]
    pusher = threading.Thread(
        target=lambda: _ignore_rpc_errors(api.frames.PushFrames, iter(more), timeout=TIMEOUT_S)
    )
    pusher.start()
    time.sleep(0.05)
    d.proc.kill()
    d.proc.wait(timeout=5)
    pusher.join(timeout=10)

    g = zarr.open_group(str(d.workdir / "recordings" / "crash.zarr" / "raw"), mode="r")
    t = g["0"].shape[0]
    assert n <= t <= n + 200
    print(f"killed: {t} frames readable")
    numbers = [int(k) for k in g["frame_number"][:]]
    # A checkpoint makes the metadata arrays readable just before the image array, so a kill
    # between the two renames leaves the metadata ahead by one checkpoint: every readable
    # frame has its metadata.
    assert t <= len(numbers) <= t + 200, (t, len(numbers))
    numbers = numbers[:t]
    # The first n were all written; later ones may have met the ring's drop policy.
    assert numbers[:n] == list(range(n)) and numbers == sorted(set(numbers))
    np.testing.assert_array_equal(g["0"][:], np.stack([frame(k) for k in numbers]))
    timestamps = list(g["camera_timestamp_ns"][:t])
    assert timestamps == [5_000_000 + 20_000_000 * k for k in numbers]
    assert zarr.open_group(str(d.workdir / "recordings" / "crash.zarr"), mode="r").attrs[
        "scopepilot"]["complete"] is False


def test_sigterm_mid_recording_flushes_every_accepted_frame(start_daemon):
    """SIGTERM with frames still in the ring, the stage queue and the writer's backlog: the
    daemon drains them all into the store, marks it complete, and exits 0."""
    # Large chunks, no checkpoints: nothing reaches the disk until the daemon flushes.
    cfg = CONFIG.replace("frames_per_chunk = 4", "frames_per_chunk = 64")
    d = start_daemon(cfg)
    api = Api(d)
    api.acq.Start(acq_pb2.StartRequest(source="push"), timeout=TIMEOUT_S)
    api.start_recording("term")
    n = 150
    resp = api.frames.PushFrames(
        iter([push_request(k, frame(k)) for k in range(n)]), timeout=TIMEOUT_S
    )
    accepted = resp.frames_accepted
    assert accepted + resp.frames_dropped + resp.frames_lost_no_buffer == n
    written_before = api.status().recording.frames_written
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=30) == 0, d.stderr_tail()
    print(f"SIGTERM: {written_before} of {accepted} written before the signal")

    root = d.workdir / "recordings" / "term.zarr"
    g = zarr.open_group(str(root / "raw"), mode="r")
    assert g["0"].shape[0] == accepted, "every accepted frame is in the store"
    numbers = [int(k) for k in g["frame_number"][:]]
    assert numbers == sorted(set(numbers)) and len(numbers) == accepted
    np.testing.assert_array_equal(g["0"][:], np.stack([frame(k) for k in numbers]))
    meta = zarr.open_group(str(root), mode="r").attrs["scopepilot"]
    assert meta["complete"] is True
    assert "shutting down" in d.stderr_tail(200)


def _ignore_rpc_errors(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except grpc.RpcError:
        pass
