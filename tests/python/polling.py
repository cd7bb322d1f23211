"""`wait_for`: poll a condition until it holds, for tests that watch the daemon's counters."""

from __future__ import annotations

import time


def wait_for(predicate, what: str = "", timeout_s: float = 10.0, interval_s: float = 0.02):
    """Call `predicate()` until it returns a truthy value, and return that value; fail the
    test with `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what or predicate}")
        time.sleep(interval_s)
