"""What this process last saw of a full disk, for health: a write the ledger's storage
refused for want of space (the embedded log's append, the control store's idempotency
or key writes, the read model). The projector's own retries say so in its heartbeat;
this covers the writes that are answered 503 `storage_full` and then forgotten."""
from __future__ import annotations

import time

from projections.runtime.storage_full import STORAGE_FULL, describe

WINDOW = 60.0
"""Seconds a refused write keeps health red: long enough for a probe to see it, short
enough that health turns green again soon after space is freed."""


class StorageAlarm:
    def __init__(self, window: float = WINDOW):
        self.window = window
        self._last: tuple[float, str] | None = None

    def raised(self, exc: BaseException) -> None:
        """A write was refused because the storage is full."""
        self._last = (time.monotonic(), describe(exc).removeprefix(f"{STORAGE_FULL}: "))

    def recent(self) -> str | None:
        """A line for health while the last refusal is recent, else None."""
        if self._last is None:
            return None
        age = time.monotonic() - self._last[0]
        if age > self.window:
            return None
        return f"a write was refused {age:.0f} s ago: {self._last[1]}"
