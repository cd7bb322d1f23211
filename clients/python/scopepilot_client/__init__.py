"""scopepilot_client: a typed Python client of the scopepilot daemon, and a Micro-Manager
bridge (`scopepilot_client.micromanager`, needs pymmcore-plus).

    from scopepilot_client import Scopepilot
    with Scopepilot("127.0.0.1:50051") as sp:
        sp.start("push")
        pusher = sp.frame_pusher()
        pusher.push(image, frame_number=0)
        for action in sp.actions():
            ...
            sp.acknowledge(action)
"""

from .client import (
    Action,
    CameraSettings,
    Event,
    FramePusher,
    PushSummary,
    ReceivedFrame,
    Scopepilot,
    Stream,
    push_request,
)

__all__ = [
    "Action",
    "CameraSettings",
    "Event",
    "FramePusher",
    "PushSummary",
    "ReceivedFrame",
    "Scopepilot",
    "Stream",
    "push_request",
]
