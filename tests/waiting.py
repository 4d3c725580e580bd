"""Polling helper for tests that watch another thread."""

from __future__ import annotations

import time


def wait_until(cond, timeout: float = 60.0, poll: float = 0.005) -> None:
    """Return once ``cond()`` is true; fail the test after ``timeout`` seconds."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError("timed out waiting")
        time.sleep(poll)
