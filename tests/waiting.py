"""Polling for an eventually consistent answer, in tests (never as a timed assertion)."""
from __future__ import annotations

import time


def wait_for(fetch, done, timeout: float = 60):
    """Call `fetch` until `done(value)`; the last value is in the error otherwise."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = fetch()
        if done(value):
            return value
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout}s; last value: {value}")
