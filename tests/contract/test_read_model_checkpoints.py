"""The checkpoint compare-and-set under real concurrency: two transactions race, one wins.

On PostgreSQL (READ COMMITTED) the loser's UPDATE waits for the winner's row lock and
then re-checks its WHERE against the committed row; its INSERT of a first checkpoint
waits on the primary key. On SQLite the loser waits for the write lock. Either way the
loser must see LostPartition, never commit over the winner.
"""
from __future__ import annotations

import asyncio

import pytest

from projections.runtime import checkpoints
from projections.runtime.checkpoints import LostPartition


async def race(engine, expected: int, first_new: int, second_new: int) -> None:
    """The first transaction moves the checkpoint and holds its lock while the second tries."""
    async with engine.connect() as first, engine.connect() as second:
        await first.begin()
        await checkpoints.advance(first, "main", 0, expected, first_new)

        async def loser():
            async with second.begin():
                await checkpoints.advance(second, "main", 0, expected, second_new)

        attempt = asyncio.create_task(loser())
        await first.commit()
        with pytest.raises(LostPartition):
            await asyncio.wait_for(attempt, 30)


async def stored(engine) -> int:
    async with engine.connect() as conn:
        return (await checkpoints.load(conn, "main"))[0]


async def test_two_projectors_creating_the_first_checkpoint_one_wins(engine):
    await race(engine, expected=0, first_new=5, second_new=7)
    assert await stored(engine) == 5


async def test_two_projectors_moving_the_same_checkpoint_one_wins(engine):
    async with engine.begin() as conn:
        await checkpoints.advance(conn, "main", 0, 0, 5)
    await race(engine, expected=5, first_new=10, second_new=12)
    assert await stored(engine) == 10
