"""The Models service and a live denoise stage, from a Python client, against the real
``scopepilot`` binary. The daemon runs in a temporary directory with relative model paths:
it finds the shipped models next to its executable's checkout.
"""

from __future__ import annotations

import time

import grpc
import numpy as np
import pytest

from scopepilot.v1 import acquisition_pb2 as acq_pb2
from scopepilot.v1 import acquisition_pb2_grpc as acq_grpc
from scopepilot.v1 import frames_pb2
from scopepilot.v1 import frames_pb2_grpc
from scopepilot.v1 import models_pb2
from scopepilot.v1 import models_pb2_grpc

RPC_TIMEOUT_S = 20.0
SIDE = 128

CONFIG = f"""
[api]
listen = "127.0.0.1:0"

[acquisition]
autostart = false

[source]
kind = "simulated"

[source.simulated]
width = {SIDE}
height = {SIDE}
frame_rate_hz = 10.0
seed = 3

[source.simulated.scene]
initial_nuclei = 4

[inference]
intra_threads = 1

[[stages]]
name = "denoised"
kind = "denoise"
input = "raw"
queue = {{ capacity = 4, policy = "drop_oldest" }}
params = {{ model = "models/denoise-fast-nuclei" }}
"""


@pytest.fixture(scope="module")
def stubs(start_daemon):
    ch = start_daemon(CONFIG).channel()
    return (
        acq_grpc.AcquisitionStub(ch),
        frames_pb2_grpc.FramesStub(ch),
        models_pb2_grpc.ModelsStub(ch),
    )


def denoised_stage(acq):
    status = acq.GetStatus(acq_pb2.GetStatusRequest(), timeout=RPC_TIMEOUT_S)
    return next(s for s in status.stages if s.name == "denoised")


def take(frames, stage: str, n: int) -> list:
    call = frames.SubscribeFrames(
        frames_pb2.SubscribeFramesRequest(stage=stage, format=frames_pb2.FRAME_FORMAT_FULL),
        timeout=RPC_TIMEOUT_S,
    )
    out = []
    for f in call:
        out.append(f)
        if len(out) == n:
            call.cancel()
            break
    return out


def as_array(f) -> np.ndarray:
    dtype = {frames_pb2.PIXEL_TYPE_U16: "<u2", frames_pb2.PIXEL_TYPE_F32: "<f4"}[f.pixel_type]
    return np.frombuffer(f.data, dtype=dtype).reshape(f.height, f.width).astype(np.float64)


def roughness(img: np.ndarray) -> float:
    """Std of the difference of horizontal neighbours in the background, where it is camera
    noise. Background = where a 7x7 box mean is near the frame's median (a sparse field, so
    the median is background), chosen on the smoothed image so the per-pixel noise itself is
    not truncated by the selection."""
    smooth = sum(np.roll(img, (dy, dx), axis=(0, 1)) for dy in range(-3, 4) for dx in range(-3, 4)) / 49
    background = np.abs(smooth - np.median(smooth)) < 15.0
    background[:3, :] = background[-3:, :] = background[:, :3] = background[:, -3:] = False
    both = background[:, 1:] & background[:, :-1]
    return float(np.diff(img, axis=1)[both].std())


def test_shipped_models_are_listed(stubs):
    _, _, models = stubs
    listed = models.ListModels(models_pb2.ListModelsRequest(), timeout=RPC_TIMEOUT_S).models
    by_name = {m.name: m for m in listed}
    for name in ("denoise-fast-nuclei", "denoise-care-nuclei"):
        assert name in by_name, [m.name for m in listed]
        assert by_name[name].format.startswith("bioimage.io 0.5"), by_name[name]
        assert by_name[name].problem == ""


def test_live_denoising_and_switching_models(stubs):
    acq, frames, models = stubs
    acq.Start(acq_pb2.StartRequest(), timeout=RPC_TIMEOUT_S)
    try:
        stage = denoised_stage(acq)
        assert stage.model.name == "denoise-fast-nuclei"
        assert stage.model.provider == "cpu"
        assert stage.model.HasField("self_test")

        raw = as_array(take(frames, "raw", 1)[0])
        out = as_array(take(frames, "denoised", 1)[0])
        assert out.shape == raw.shape == (SIDE, SIDE)
        # Same intensity scale (ADU in, ADU out), much less pixel-to-pixel noise.
        assert abs(out.mean() - raw.mean()) < 0.05 * raw.mean()
        assert roughness(out) < 0.4 * roughness(raw), (roughness(out), roughness(raw))

        reply = models.LoadModel(
            models_pb2.LoadModelRequest(model="denoise-care-nuclei", stage="denoised"),
            timeout=RPC_TIMEOUT_S,
        )
        assert reply.applied_to_running_stage
        deadline = time.monotonic() + 10
        while denoised_stage(acq).model.name != "denoise-care-nuclei":
            assert time.monotonic() < deadline, "the stage did not switch model"
            time.sleep(0.05)
        assert denoised_stage(acq).errors == 0
    finally:
        acq.Stop(acq_pb2.StopRequest(), timeout=RPC_TIMEOUT_S)


def test_a_broken_model_is_refused_and_the_daemon_keeps_serving(stubs, tmp_path):
    acq, _, models = stubs
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07not really a model")
    with pytest.raises(grpc.RpcError) as info:
        models.LoadModel(models_pb2.LoadModelRequest(model=str(bad)), timeout=RPC_TIMEOUT_S)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a loadable ONNX model" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        models.LoadModel(models_pb2.LoadModelRequest(model="no-such-model"), timeout=RPC_TIMEOUT_S)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert acq.GetStatus(acq_pb2.GetStatusRequest(), timeout=RPC_TIMEOUT_S).version
