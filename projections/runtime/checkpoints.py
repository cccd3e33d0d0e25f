"""Tracking records: which offset of which partition a projection has applied.

Written in the same transaction as the rows it covers. The update is a
compare-and-set on the previous offset, so a projector that lost its partition
cannot commit over the new owner.

On PostgreSQL every move is also announced (`pg_notify` on CHANNEL, in the same
statement, so it is delivered when the batch commits and never before): a process
waiting for a checkpoint it does not project itself wakes when it passes instead of
polling (`wait_until_stored`). SQLite has no such signal; there the wait polls, and
the embedded server's own projector wakes its waiters directly (Projector.wait).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Callable

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections.store.tables import checkpoints

log = logging.getLogger("runledger.checkpoints")

CHANNEL = "runledger_checkpoints"
"""PostgreSQL notification channel; payload `<schema>:<partition>:<next_offset>:<projection>`
(the schema tells read-model versions, which share a database, apart)."""
POLL_CAP = 0.02
"""Longest pause between two reads of a stored checkpoint where nothing announces it (SQLite)."""
RECHECK = 0.5
"""Beside the notifications, the stored checkpoint is read again at least this often (a lost
listener connection, a read-model switch)."""


class LostPartition(RuntimeError):
    """Another projector moved this partition's checkpoint: our batch must not commit."""


async def load(conn: AsyncConnection, projection: str) -> dict[int, int]:
    query = select(checkpoints.c.partition, checkpoints.c.next_offset).where(
        checkpoints.c.projection == projection
    )
    return {p: o for p, o in (await conn.execute(query)).all()}


async def wait_until_stored(engine: AsyncEngine | Callable[[], AsyncEngine], projection: str, partition: int,
                            offset: int, deadline: float) -> bool:
    """Wait until the stored checkpoint has passed `offset`, or `deadline` (time.monotonic())
    comes: for waiters with no projector of their own. On PostgreSQL the wait wakes on the
    projector's notification (and reads the checkpoint again at least every RECHECK seconds,
    should one be lost); on SQLite it reads the checkpoint, backing off from 1 ms to POLL_CAP.
    `engine` may be a function giving the engine to ask at each read (the active read-model
    version, which a rebuild can switch while we wait)."""
    query = select(checkpoints.c.next_offset).where(
        checkpoints.c.projection == projection, checkpoints.c.partition == partition
    )
    delay = 0.001
    first = engine() if callable(engine) else engine
    async with _listening(first) as listener:
        while True:
            signal = listener.signal if listener is not None else None  # taken before the read: no move slips by
            async with (engine() if callable(engine) else engine).connect() as conn:
                reached = await conn.scalar(query)
            if reached is not None and reached > offset:
                return True
            now = time.monotonic()
            if now >= deadline:
                return False
            if signal is None:
                await asyncio.sleep(min(delay, deadline - now))
                delay = min(delay * 2, POLL_CAP)
            else:
                await listener.wait_past(signal, projection, partition, offset, min(deadline, now + RECHECK))


class _Listener:
    """One LISTEN connection per engine while anyone waits on it (reference-counted: the
    connection goes back to the pool when the last waiter leaves, so nothing stays open)."""

    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        self.users = 0
        self.schema: str | None = None
        self.reached: dict[tuple[str, int], int] = {}
        self.signal = asyncio.Event()
        """Set (and replaced) on every announced move of this schema's checkpoints."""
        self.opened: asyncio.Future | None = None
        self._conn: AsyncConnection | None = None
        self._driver = None

    async def open(self) -> None:
        self._conn = await self.engine.connect()
        self.schema = await self._conn.scalar(select(func.current_schema()))
        await self._conn.commit()  # PostgreSQL delivers notifications only between transactions
        raw = await self._conn.get_raw_connection()
        self._driver = raw.driver_connection
        await self._driver.add_listener(CHANNEL, self._notified)

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # a broken connection is discarded by the pool
            if self._driver is not None:
                await self._driver.remove_listener(CHANNEL, self._notified)
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()

    def _notified(self, _connection, _pid, _channel, payload: str) -> None:
        schema, partition, offset, projection = payload.split(":", 3)
        if schema != self.schema:
            return  # another read-model version's projector
        key = (projection, int(partition))
        if int(offset) > self.reached.get(key, -1):
            self.reached[key] = int(offset)
            self.signal.set()
            self.signal = asyncio.Event()

    async def wait_past(self, signal: asyncio.Event, projection: str, partition: int, offset: int,
                        until: float) -> None:
        """Until an announcement says `offset` is passed, or `until` (time.monotonic())."""
        while self.reached.get((projection, partition), -1) <= offset:
            remaining = until - time.monotonic()
            if remaining <= 0:
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(signal.wait(), remaining)
            signal = self.signal


_listeners: dict[tuple[int, int], _Listener] = {}


@contextlib.asynccontextmanager
async def _listening(engine: AsyncEngine):
    """The engine's shared listener (None where there is none: SQLite, or it failed to open)."""
    if engine.dialect.name != "postgresql":
        yield None
        return
    key = (id(asyncio.get_running_loop()), id(engine))
    listener = _listeners.get(key)
    if listener is None:
        listener = _listeners[key] = _Listener(engine)
        listener.opened = asyncio.ensure_future(listener.open())
    listener.users += 1
    try:
        try:
            await asyncio.shield(listener.opened)
        except Exception as exc:  # noqa: BLE001 - polling still answers; the next waiter tries again
            log.warning("checkpoint listener unavailable (%s); polling", exc)
            yield None
        else:
            yield listener
    finally:
        listener.users -= 1
        if listener.users == 0:
            if _listeners.get(key) is listener:
                del _listeners[key]
            await asyncio.shield(listener.close())


async def advance(conn: AsyncConnection, projection: str, partition: int, expected: int, new: int) -> None:
    where = (checkpoints.c.projection == projection) & (checkpoints.c.partition == partition)
    moved = update(checkpoints).where(where & (checkpoints.c.next_offset == expected)).values(next_offset=new)
    if conn.dialect.name == "postgresql":  # the compare-and-set and its announcement in one round trip
        announced = moved.returning(checkpoints.c.next_offset).cte("moved")
        note = func.concat(func.current_schema(), f":{partition}:{new}:{projection}")
        if await conn.scalar(select(func.count(func.pg_notify(CHANNEL, note))).select_from(announced)) == 1:
            return
    elif (await conn.execute(moved)).rowcount == 1:
        return
    if expected == 0:
        try:
            async with conn.begin_nested():
                await conn.execute(insert(checkpoints).values(
                    projection=projection, partition=partition, next_offset=new))
            await _announce(conn, projection, partition, new)
            return
        except IntegrityError:
            pass
    raise LostPartition(f"{projection} partition {partition}: checkpoint is no longer {expected}")


async def still_moved(conn: AsyncConnection, projection: str, partition: int, new: int) -> bool:
    """Inside the batch's transaction, after `advance`: does it still see its own move?
    False when the store ended the transaction under us (SQLite rolls a whole
    transaction back on SQLITE_FULL) and the statements since ran outside it."""
    query = select(checkpoints.c.next_offset).where(checkpoints.c.projection == projection,
                                                    checkpoints.c.partition == partition)
    return await conn.scalar(query) == new


async def _announce(conn: AsyncConnection, projection: str, partition: int, new: int) -> None:
    if conn.dialect.name == "postgresql":
        await conn.execute(select(func.pg_notify(CHANNEL, func.concat(func.current_schema(),
                                                                      f":{partition}:{new}:{projection}"))))
