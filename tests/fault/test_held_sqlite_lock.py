"""A transient fault never stops a partition: another process holds the read model's
write lock far past the busy timeout (as a backup or VACUUM would), mid-stream. The
projector retries with backoff; when the lock goes, it catches up, and the read model
equals a clean replay's with every counter as the workload says."""
from __future__ import annotations

import asyncio
import sqlite3

from sqlalchemy import event

from events.sqlite_log import SqliteEventLog
from projections.runtime.projector import Projector
from projections.store.database import create_schema, make_engine
from tests.fault.workload import Workload, append, assert_survived, wait_until

BUSY_TIMEOUT_MS = 200


def impatient_engine(path):
    """The production engine, with a short busy timeout so the test need not wait 30 s."""
    engine = make_engine(f"sqlite+aiosqlite:///{path}")

    @event.listens_for(engine.sync_engine, "connect")
    def _short_busy_timeout(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.close()

    return engine


async def test_a_write_lock_held_past_the_busy_timeout_is_retried_and_stops_nothing(tmp_path):
    log = SqliteEventLog(tmp_path / "log.db", partitions=3)
    await log.start()
    engine, replay = impatient_engine(tmp_path / "readmodel.db"), impatient_engine(tmp_path / "replay.db")
    await create_schema(engine)
    await create_schema(replay)
    workload = Workload.build()
    projector = Projector(log, engine, batch_size=7)
    task = asyncio.create_task(projector.run())
    try:
        first = await append(log, workload.first)
        for position in first:
            assert await projector.wait(position, 30)

        holder = sqlite3.connect(tmp_path / "readmodel.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # the backup's write lock
        try:
            second = await append(log, workload.second)
            await wait_until(lambda: projector.transient_total >= 3, "the projector to meet the lock three times")
            assert all(s.stopped is None for s in projector.partitions.values())
            assert not all(projector.passed(p) for p in second)
        finally:
            holder.execute("ROLLBACK")
            holder.close()

        for position in second:
            assert await projector.wait(position, 60), f"the projector did not resume to {position}"
        assert all(s.stopped is None for s in projector.partitions.values())
        assert task.done() is False
    finally:
        projector.stop()
        await asyncio.wait_for(task, 30)
    await assert_survived(log, engine, replay, workload, first + second)
