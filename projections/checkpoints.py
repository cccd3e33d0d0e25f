"""Tracking records: which offset of which partition a projection has applied.

Written in the same transaction as the rows it covers. The update is a
compare-and-set on the previous offset, so a projector that lost its partition
cannot commit over the new owner.
"""
from __future__ import annotations

import asyncio
import time
from typing import Callable

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .tables import checkpoints


class LostPartition(RuntimeError):
    """Another projector moved this partition's checkpoint: our batch must not commit."""


async def load(conn: AsyncConnection, projection: str) -> dict[int, int]:
    query = select(checkpoints.c.partition, checkpoints.c.next_offset).where(
        checkpoints.c.projection == projection
    )
    return {p: o for p, o in (await conn.execute(query)).all()}


async def wait_until_stored(engine: AsyncEngine | Callable[[], AsyncEngine], projection: str, partition: int,
                            offset: int, deadline: float) -> bool:
    """Poll the stored checkpoint (backing off to 0.1 s) until it has passed `offset`,
    or `deadline` (time.monotonic()) comes: for waiters with no projector of their own.
    `engine` may be a function giving the engine to ask at each poll (the active
    read-model version, which a rebuild can switch while we wait)."""
    query = select(checkpoints.c.next_offset).where(
        checkpoints.c.projection == projection, checkpoints.c.partition == partition
    )
    delay = 0.005
    while True:
        async with (engine() if callable(engine) else engine).connect() as conn:
            reached = await conn.scalar(query)
        if reached is not None and reached > offset:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 0.1)


async def advance(conn: AsyncConnection, projection: str, partition: int, expected: int, new: int) -> None:
    where = (checkpoints.c.projection == projection) & (checkpoints.c.partition == partition)
    result = await conn.execute(
        update(checkpoints).where(where & (checkpoints.c.next_offset == expected)).values(next_offset=new)
    )
    if result.rowcount == 1:
        return
    if expected == 0:
        try:
            async with conn.begin_nested():
                await conn.execute(insert(checkpoints).values(
                    projection=projection, partition=partition, next_offset=new))
            return
        except IntegrityError:
            pass
    raise LostPartition(f"{projection} partition {partition}: checkpoint is no longer {expected}")
