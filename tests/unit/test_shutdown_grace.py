"""services/shutdown.py's Grace: each step of a stop gets until its share of the grace, then is
cancelled and left; what finishes in time is not disturbed."""
from __future__ import annotations

import asyncio

from services.shutdown import CLOSED, WORK, Grace


async def test_a_step_done_in_time_is_awaited_and_a_late_one_cancelled_and_left():
    grace = Grace(0.5)
    grace.begin()
    assert await grace.wait(asyncio.sleep(0), "quick", WORK)
    late = asyncio.create_task(asyncio.sleep(60))
    assert not await grace.wait(late, "late", WORK)
    await asyncio.sleep(0)
    assert late.cancelled()


async def test_an_error_is_reported_not_raised():
    async def broken():
        raise ConnectionRefusedError("the broker is gone")

    assert not await Grace(1.0).wait(broken(), "closing the producer", CLOSED)


async def test_stop_asks_first_and_cancels_only_what_does_not_finish():
    grace = Grace(0.5)
    grace.begin()
    asked = asyncio.Event()

    async def polite():
        await asked.wait()  # finishes its work in hand once asked

    task = asyncio.create_task(polite())
    await grace.stop(task, asked.set, "polite")
    assert task.done() and not task.cancelled()

    stubborn = asyncio.create_task(asyncio.sleep(60))
    await grace.stop(stubborn, lambda: None, "stubborn")
    assert stubborn.cancelled()
