"""Hearing every write's announcement (projections/runtime/changes.py) on PostgreSQL, from
whichever process made it: one LISTEN connection per engine, kept open.

Whoever keeps answers derived from the read model (the API's read cache) can trust them
only while it hears every change. So the subscriber is told `None` (forget everything)
once the LISTEN is in place, and again whenever the connection is lost, and `listening`
is true only in between: a change committed while nobody listened was either before the
`None` or is heard. A lost connection is reopened with backoff. A connection that dies
without the server or the driver noticing is not seen here: the subscriber's own age
bound covers that (services/api/read_cache.py).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections.runtime.changes import CHANNEL, Changed, Subscriber

log = logging.getLogger("runledger.changes")

RETRY_FIRST, RETRY_CAP = 0.1, 5.0  # seconds between attempts to (re)open, doubling


class ChangeListener:
    def __init__(self, engine: AsyncEngine, subscriber: Subscriber):
        self.engine, self.subscriber = engine, subscriber
        self.listening = False
        self.lost = 0  # connections lost so far (each one forgot every cached answer)
        self.schema: str | None = None
        self._conn: AsyncConnection | None = None
        self._driver = None
        self._closed = False
        self._opening: asyncio.Task | None = None

    def start(self) -> None:
        """Begin listening (in the background, retried until it succeeds or `close`)."""
        if self._opening is None and not self._closed:
            self._opening = asyncio.ensure_future(self._open_until_done())

    async def wait_listening(self, timeout: float) -> bool:
        """True once listening (tests, and a server's start-up), False after `timeout` seconds."""
        opening = self._opening
        if not self.listening and opening is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(opening), timeout)
        return self.listening

    async def close(self) -> None:
        self._closed = True
        if self._opening is not None:
            self._opening.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._opening
        await self._release()
        self.listening = False

    async def _open_until_done(self) -> None:
        delay = RETRY_FIRST
        while not self._closed:
            try:
                await self._open()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the database may be away for a while: try again
                log.warning("change listener: cannot listen (%s: %s); retrying", type(exc).__name__, exc)
                await self._release()
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, RETRY_CAP)

    async def _open(self) -> None:
        self._conn = await self.engine.connect()
        self.schema = await self._conn.scalar(select(func.current_schema()))
        await self._conn.commit()  # PostgreSQL delivers notifications only between transactions
        self._driver = (await self._conn.get_raw_connection()).driver_connection
        await self._driver.add_listener(CHANNEL, self._notified)
        self._driver.add_termination_listener(self._lost)
        self.subscriber.changed(None)  # whatever committed before the LISTEN: forgotten
        self.listening = True
        self._opening = None

    def _notified(self, _connection, _pid, _channel, payload: str) -> None:
        schema, _, text = payload.partition("\n")
        if schema != self.schema:
            return  # another read-model version's writer
        try:
            changed = Changed.from_payload(text)
        except Exception:  # noqa: BLE001 - unreadable: forget everything rather than miss it
            log.exception("change listener: unreadable announcement")
            changed = None
        self.subscriber.changed(changed)

    def _lost(self, _connection) -> None:
        self.listening = False
        self.lost += 1
        self.subscriber.changed(None)
        if self._closed:
            return
        log.warning("change listener: connection lost; listening again")
        self._driver = None
        old, self._conn = self._conn, None
        if old is not None:
            asyncio.ensure_future(_invalidate(old))
        self._opening = asyncio.ensure_future(self._open_until_done())

    async def _release(self) -> None:
        driver, conn = self._driver, self._conn
        self._driver = self._conn = None
        if driver is not None:
            with contextlib.suppress(Exception):
                driver.remove_termination_listener(self._lost)
                await driver.remove_listener(CHANNEL, self._notified)
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()


async def _invalidate(conn: AsyncConnection) -> None:
    with contextlib.suppress(Exception):
        await conn.invalidate()
