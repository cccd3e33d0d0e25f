"""Waiting for a stored checkpoint (read-your-writes on a replica that does not project the
partition itself): the wait ends when the projector's commit passes the position. On
PostgreSQL the commit announces it (pg_notify), so the waiter wakes without polling."""
from __future__ import annotations

import asyncio
import time

import pytest

from projections.runtime import checkpoints


async def move(engine, expected: int, new: int) -> None:
    async with engine.begin() as conn:
        await checkpoints.advance(conn, "main", 0, expected, new)


async def test_a_waiter_returns_once_a_commit_passes_its_offset_and_not_for_a_lower_one(engine):
    await move(engine, 0, 5)
    waiter = asyncio.create_task(checkpoints.wait_until_stored(engine, "main", 0, 9, time.monotonic() + 60))
    await move(engine, 5, 9)  # offset 9 itself is not applied yet: next_offset 9
    await move(engine, 9, 10)
    assert await asyncio.wait_for(waiter, 30) is True
    assert await checkpoints.wait_until_stored(engine, "main", 0, 9, time.monotonic()) is True  # already passed
    assert await checkpoints.wait_until_stored(engine, "main", 0, 10, time.monotonic()) is False  # deadline now
    assert await checkpoints.wait_until_stored(engine, "main", 1, 0, time.monotonic() + 0.01) is False  # none yet


@pytest.mark.postgres
async def test_on_postgresql_the_commit_wakes_the_waiter_without_a_second_read(engine, monkeypatch):
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no notifications: its waiters poll")
    monkeypatch.setattr(checkpoints, "RECHECK", 3600.0)  # a waiter that missed the notification would sleep on
    await move(engine, 0, 5)
    waiter = asyncio.create_task(checkpoints.wait_until_stored(engine, "main", 0, 7, time.monotonic() + 3600))
    while not checkpoints._listeners:  # listening: the waiter has read 5 and waits
        await asyncio.sleep(0.01)
    await move(engine, 5, 6)  # announced, but not past 7: the waiter keeps waiting
    await move(engine, 6, 8)
    assert await asyncio.wait_for(waiter, 30) is True
    assert not checkpoints._listeners  # the last waiter gave its connection back


@pytest.mark.postgres
async def test_on_postgresql_another_schema_s_checkpoint_does_not_count(engine, monkeypatch):
    """Read-model versions share a database in their own schemas: an announcement names its schema."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    await move(engine, 0, 5)
    waiter = asyncio.create_task(checkpoints.wait_until_stored(engine, "main", 0, 7, time.monotonic() + 60))
    while not checkpoints._listeners:
        await asyncio.sleep(0.01)
    [listener] = checkpoints._listeners.values()
    await listener.opened
    listener._notified(None, 0, checkpoints.CHANNEL, "rl_v99:0:100:main")  # another version's projector
    assert listener.reached == {}
    await move(engine, 5, 8)
    assert await asyncio.wait_for(waiter, 30) is True
