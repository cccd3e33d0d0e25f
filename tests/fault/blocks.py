"""Block functions for fault tests, loaded by `runledger worker --block tests.fault.blocks:...`."""
from __future__ import annotations

import asyncio
import time


async def slow_block(block_type: str, config: dict, handle_inputs: dict, pass_index: int) -> dict:
    """A second a pass, then an answer: a worker running it has passes in flight and facts to emit."""
    await asyncio.sleep(1.0)
    return {"category": "invoice"}


def stuck_block(block_type: str, config: dict, handle_inputs: dict, pass_index: int) -> dict:
    """A pass that never ends, in a thread no one can interrupt (a model call that hangs)."""
    time.sleep(3600)
    return {"category": "never"}
