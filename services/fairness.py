"""One event loop serves every organisation: a request that computes for long (a page of
a thousand items, a large template) gives the loop back every few milliseconds, so another
organisation's small read waits a slice, not the whole page (docs/api.md, "What a request
costs": the other tenant's p99 is part of the contract)."""
from __future__ import annotations

import asyncio
import time

SLICE = 0.004
"""Seconds of computing after which `breathe` yields to the loop."""

_last = 0.0


async def breathe() -> None:
    """Yield to the loop if it has not had a turn for `SLICE` seconds, as far as the
    callers of this function know (a real wait elsewhere also gives it one: yielding a
    little early then is harmless)."""
    global _last
    now = time.perf_counter()
    if now - _last >= SLICE:
        await asyncio.sleep(0)
        _last = time.perf_counter()
