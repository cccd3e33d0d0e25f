"""A full read model is a fault, not a bug (issue 18.5): the projector retries it, quarantines
nothing, stops nothing, writes nothing partial, and says `retrying` with the cause; when
space returns it catches up to the workload's ground truth and a clean replay's state.

The disk is filled without a mount: SQLite answers SQLITE_FULL ("database or disk is
full") exactly as on a full filesystem when a database reaches its `max_page_count`, and
rolls the whole transaction back as it does then, savepoints included. (The fault test
tests/fault/test_full_disk.py fills a real filesystem under a running server.)
"""
from __future__ import annotations

import asyncio

from sqlalchemy import event, func, select, text

from events.sqlite_log import SqliteEventLog
from projections.runtime import batch as batch_module, projector as projector_module
from projections.runtime.projector import Projector
from projections.runtime.storage_full import STORAGE_FULL
from projections.store.database import create_schema, make_engine
from projections.store.tables import checkpoints, event_index, parked_events, quarantined
from tests.fault.workload import Workload, append, assert_survived, wait_until

UNLIMITED = 1 << 30


class CappedStore:
    """A SQLite read model whose size is capped at will: `fill()` caps it at its current
    size (the next page it needs is refused, SQLITE_FULL), `free()` lifts the cap."""

    def __init__(self, path):
        self.path, self.cap = path, UNLIMITED
        self.engine = make_engine(f"sqlite+aiosqlite:///{path}")

        @event.listens_for(self.engine.sync_engine, "checkout")
        def _cap(dbapi_connection, _record, _proxy):
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA max_page_count={self.cap}")  # SQLite keeps it >= the current size
            cursor.close()

    async def fill(self) -> None:
        async with self.engine.connect() as conn:
            self.cap = await conn.scalar(text("PRAGMA page_count"))

    def free(self) -> None:
        self.cap = UNLIMITED


async def counts(engine) -> tuple[int, int, int]:
    async with engine.connect() as conn:
        return tuple([await conn.scalar(select(func.count()).select_from(t))
                      for t in (quarantined, parked_events, event_index)])


async def stored_checkpoints(engine) -> dict[int, int]:
    async with engine.connect() as conn:
        return dict((await conn.execute(select(checkpoints.c.partition, checkpoints.c.next_offset))).all())


async def started(tmp_path):
    log = SqliteEventLog(tmp_path / "log.db", partitions=3)
    await log.start()
    store, replay = CappedStore(tmp_path / "readmodel.db"), make_engine(f"sqlite+aiosqlite:///{tmp_path}/replay.db")
    await create_schema(store.engine)
    await create_schema(replay)
    return log, store, replay


async def test_a_full_read_model_is_retried_and_loses_nothing_when_space_returns(tmp_path):
    log, store, replay = await started(tmp_path)
    workload = Workload.build(tag="full")
    projector = Projector(log, store.engine, batch_size=7)
    task = asyncio.create_task(projector.run())
    try:
        first = await append(log, workload.first)
        for position in first:
            assert await projector.wait(position, 30)
        await store.fill()
        before = await counts(store.engine), await stored_checkpoints(store.engine)
        second = await append(log, workload.second)
        await wait_until(lambda: projector.transient_total >= 3, "the projector to meet the full store three times")

        values = projector.heartbeat_values()
        assert values["state"] == "retrying" and STORAGE_FULL in values["detail"], values
        assert all(s.stopped is None for s in projector.partitions.values())
        assert not any(projector.passed(p) for p in second[-1:])
        assert (await counts(store.engine), await stored_checkpoints(store.engine)) == before  # nothing partial

        store.free()
        for position in second:
            assert await projector.wait(position, 60), f"the projector did not resume to {position}"
        assert all(s.stopped is None for s in projector.partitions.values())
        assert (await counts(store.engine))[:2] == (0, 0)  # nothing quarantined, nothing parked
    finally:
        projector.stop()
        await asyncio.wait_for(task, 30)
    await assert_survived(log, store.engine, replay, workload, first + second)


async def test_a_full_disk_met_while_isolating_runs_aborts_the_batch_instead_of_quarantining(tmp_path, monkeypatch):
    """The store refuses a batch for some other reason, the projector writes it again with
    one savepoint per run, and the disk fills meanwhile: SQLite rolls the whole transaction
    back under the savepoint. Before issue 18 the run was quarantined ("no such savepoint")
    and the statements after it committed outside the transaction."""
    log, store, replay = await started(tmp_path)
    workload = Workload.build(tag="iso")
    real_save, injected = projector_module.save, []

    async def save_refused_once(conn, batch, isolate=False, **kwargs):
        if not isolate and not injected:
            injected.append(True)
            await store.fill()  # the disk fills as the store refuses the batch
            raise RuntimeError("the store refused the batch (injected)")
        return await real_save(conn, batch, isolate=isolate, **kwargs)

    projector = Projector(log, store.engine, batch_size=50)
    task = asyncio.create_task(projector.run())
    try:
        first = await append(log, workload.first)
        for position in first:
            assert await projector.wait(position, 30)
        before = await counts(store.engine), await stored_checkpoints(store.engine)
        monkeypatch.setattr(projector_module, "save", save_refused_once)
        second = await append(log, workload.second)
        await wait_until(lambda: injected and projector.transient_total >= 2,
                         "the isolated write to meet the full disk")
        assert (await counts(store.engine), await stored_checkpoints(store.engine)) == before
        assert all(s.stopped is None for s in projector.partitions.values()) and projector.quarantined_total == 0
        store.free()
        for position in second:
            assert await projector.wait(position, 60), f"the projector did not resume to {position}"
        assert (await counts(store.engine))[:2] == (0, 0)
    finally:
        projector.stop()
        await asyncio.wait_for(task, 30)
    await assert_survived(log, store.engine, replay, workload, first + second)


async def test_a_refused_run_whose_error_took_the_transaction_with_it_aborts_the_batch(tmp_path, monkeypatch):
    """Whatever the error, if the savepoint is gone the transaction is gone: the batch is
    retried whole (`TransactionLost`, transient), nothing is quarantined or written."""
    log, store, replay = await started(tmp_path)
    workload = Workload.build(runs=2, tag="lost")
    real_execute, real_save, broken = batch_module.writes_module.execute, projector_module.save, []

    async def execute_that_loses_the_transaction(conn, aggregates):
        if not broken:
            broken.append(True)
            raw = await conn.get_raw_connection()
            await raw.driver_connection.execute("ROLLBACK")  # as SQLite does on SQLITE_FULL
            raise ValueError("a deterministic-looking error, after the transaction ended")
        return await real_execute(conn, aggregates)

    async def isolate_at_once(conn, batch, isolate=False, **kwargs):
        return await real_save(conn, batch, isolate=True, **kwargs)

    monkeypatch.setattr(projector_module, "save", isolate_at_once)
    monkeypatch.setattr(batch_module.writes_module, "execute", execute_that_loses_the_transaction)
    projector = Projector(log, store.engine, batch_size=500)
    task = asyncio.create_task(projector.run())
    try:
        positions = await append(log, workload.first + workload.second)
        for position in positions:
            assert await projector.wait(position, 60), f"the projector did not get past {position}"
        assert broken and projector.transient_total >= 1 and projector.quarantined_total == 0
        assert (await counts(store.engine))[:2] == (0, 0)
    finally:
        projector.stop()
        await asyncio.wait_for(task, 30)
    await assert_survived(log, store.engine, replay, workload, positions)
