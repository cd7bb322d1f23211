"""`MicroManagerBridge`: Micro-Manager acquires, scopepilot processes, and the daemon's rules
act on the microscope.

The bridge runs Micro-Manager's continuous sequence acquisition (pymmcore-plus `CMMCorePlus`)
and pushes every image into the daemon (`PushFrames`, through a bounded `FramePusher`: a slow
daemon costs dropped, counted frames, never a stalled camera buffer). It also carries out the
daemon's actions on the core and acknowledges each one:

| action | done on the core |
| --- | --- |
| `set_exposure` (`exposure_ms`) | `setExposure` |
| `set_frame_interval` (`interval_ms`) | restarts the sequence acquisition at that interval |
| `move_stage` (`x`, `y` in pixels) | centres the XY stage on that pixel (`getPixelSizeUm`) |

An action with any other name is acknowledged as failed, with a reason. The daemon's own
`capture` actions need nothing from the core.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from .client import Action, PushSummary, Scopepilot


@dataclass
class BridgeCounters:
    """What the bridge did."""

    frames_acquired: int = 0
    frames_pushed: int = 0
    actions_applied: list[str] = field(default_factory=list)
    actions_failed: list[str] = field(default_factory=list)


class MicroManagerBridge:
    """Connects one Micro-Manager core to one scopepilot daemon (already acquiring from
    source "push")."""

    def __init__(self, core, client: Scopepilot, interval_ms: float = 0.0,
                 queue_frames: int = 16):
        self.core = core
        self.client = client
        self.interval_ms = interval_ms
        self.counters = BridgeCounters()
        self._pusher = client.frame_pusher(queue_frames)
        self._camera_lock = threading.Lock()  # sequence restarts vs image pops
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._actions = client.actions()

    # --- acquisition ---------------------------------------------------------------------

    def start(self) -> None:
        self.core.startContinuousSequenceAcquisition(self.interval_ms)
        for target, name in [(self._pump, "mm-pump"), (self._act, "mm-actions")]:
            t = threading.Thread(target=target, daemon=True, name=name)
            t.start()
            self._threads.append(t)

    def _pump(self) -> None:
        while not self._stop.is_set():
            with self._camera_lock:
                image = None
                if self.core.getRemainingImageCount() > 0:
                    image = self.core.popNextImage()
                exposure_us = int(self.core.getExposure() * 1000)
            if image is None:
                time.sleep(0.001)
                continue
            number = self.counters.frames_acquired
            self.counters.frames_acquired += 1
            if self._pusher.push(image, number, time.monotonic_ns(), exposure_us):
                self.counters.frames_pushed += 1

    def stop(self) -> PushSummary:
        """Stop acquiring and pushing; the push stream's summary."""
        self._stop.set()
        self._actions.cancel()
        with self._camera_lock:
            self.core.stopSequenceAcquisition()
        for t in self._threads:
            t.join(5)
        return self._pusher.close()

    # --- actions -------------------------------------------------------------------------

    def _act(self) -> None:
        for action in self._actions:  # ends when stop() cancels the stream
            ok, message = self.apply(action)
            (self.counters.actions_applied if ok else self.counters.actions_failed).append(
                f"{action.name}: {message}")
            self.client.acknowledge(action, ok, message)

    def apply(self, action: Action) -> tuple[bool, str]:
        """Carry out one action on the core: (done, what happened)."""
        p = action.params
        if action.dry_run:
            return True, "dry run: nothing done"
        try:
            if action.name == "set_exposure":
                ms = float(p["exposure_ms"])
                self.core.setExposure(ms)
                return True, f"exposure {ms} ms"
            if action.name == "set_frame_interval":
                ms = float(p["interval_ms"])
                with self._camera_lock:
                    self.core.stopSequenceAcquisition()
                    self.interval_ms = ms
                    self.core.startContinuousSequenceAcquisition(ms)
                return True, f"frame interval {ms} ms"
            if action.name == "move_stage":
                um = self.core.getPixelSizeUm() or 1.0
                dx = (float(p["x"]) - self.core.getImageWidth() / 2) * um
                dy = (float(p["y"]) - self.core.getImageHeight() / 2) * um
                self.core.setRelativeXYPosition(dx, dy)
                return True, f"stage moved by ({dx:.1f}, {dy:.1f}) um"
            if action.name == "capture":
                return True, "captured by the daemon"
        except (KeyError, ValueError) as e:
            return False, f"bad parameters {p}: {e}"
        except RuntimeError as e:  # Micro-Manager refused
            return False, f"Micro-Manager: {e}"
        return False, f"no handler for action {action.name!r}"
