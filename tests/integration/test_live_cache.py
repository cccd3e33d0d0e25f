"""The live cache (projections/runtime/bulk.py `LiveCache`): a projector that keeps up holds
the runs it folded between batches and reads from the store only what it does not hold.

Batches folded from kept runs write exactly the rows batches folded from the store write
(every column, row versions included, and the state hashes): on the recorded log, the golden
corpus and generated histories, with a budget so small that runs are dropped and read back
and runs are held in part, on SQLite and PostgreSQL. A run whose stored version moved under
the cache (a write made elsewhere) is read again, never folded over.
"""
from __future__ import annotations

import asyncio
import contextlib
import random

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import select, update

from events.sqlite_log import SqliteEventLog
from projections.runtime import bulk
from projections.runtime.projector import Projector
from projections.store.tables import runs
from tests.builders import RunScript
from tests.conftest import _store_params
from tests.fixtures.recorded_log.replay import embedded_log, read_records
from tests.integration.test_bulk import (
    assert_a_restart_projects_as_a_clean_replay, assert_same_rows, golden_log, histories, history_log, project_all,
    run_versions,
)


@pytest.fixture(params=_store_params())
def store(request):
    return request.param


async def project(log, engine, batch_size: int, live_cache) -> Projector:
    """Every record of `log` into `engine`, in batches of at most `batch_size` (no bulk mode)."""
    return await project_all(log, engine, bulk.CatchUp(enabled=False), batch_size, live_cache=live_cache)


async def assert_cached_equals_uncached(log, store, request, tmp_path, *, batch_size: int,
                                        budget: int) -> bulk.LiveCache:
    """Folded from kept runs, the same rows as from the store, row versions included (the
    same writes), with the cache within its budget."""
    cache = bulk.LiveCache(budget)
    await assert_same_rows(store, request, tmp_path, lambda engine: project(log, engine, batch_size, live_cache=None),
                           lambda engine: project(log, engine, batch_size, live_cache=cache),
                           lambda engine: sorted_versions(engine))
    assert cache.size <= budget
    return cache


async def sorted_versions(engine) -> list:
    return sorted(await run_versions(engine))


async def test_the_recorded_log_folds_from_kept_runs_to_the_rows_batches_write(store, request, tmp_path):
    log = await embedded_log(tmp_path / "recorded.db", read_records())
    try:
        cache = await assert_cached_equals_uncached(log, store, request, tmp_path, batch_size=3, budget=1 << 20)
    finally:
        await log.close()
    assert cache.lent > 0 and cache.stale == 0


async def test_the_golden_corpus_folds_from_kept_runs_to_the_rows_batches_write(store, request, tmp_path):
    async with golden_log(tmp_path) as log:
        cache = await assert_cached_equals_uncached(log, store, request, tmp_path, batch_size=5, budget=40_000)
    assert cache.lent > 0 and cache.dropped > 0  # the budget made it drop runs and read them back


async def test_runs_found_in_the_store_are_held_in_part_and_read_on_as_touched(store, request, tmp_path):
    """After a restart the cache is empty: a run is read as a batch reads it (the documents it
    touches), kept so, and the documents later batches touch are read then."""
    cache = bulk.LiveCache()
    await assert_a_restart_projects_as_a_clean_replay(
        store, request, tmp_path, lambda log, engine: project(log, engine, 2, live_cache=cache),
        lambda log, engine: project(log, engine, 100, live_cache=None))
    assert cache.lent > 0 and cache.missing > 0


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(history=histories())
async def test_generated_histories_fold_from_kept_runs_to_the_rows_batches_write(store, request, tmp_path_factory,
                                                                                 history):
    tmp_path = tmp_path_factory.mktemp("history")
    async with history_log(tmp_path, history) as log:
        await assert_cached_equals_uncached(log, store, request, tmp_path, batch_size=3, budget=20_000)


async def test_a_run_written_elsewhere_is_read_again_not_folded_over(store, request, tmp_path):
    """One projector keeps the run between its batches; meanwhile something else writes the
    run's row (its version moves: a quarantine retry in another process, an operator's
    repair). The next batch must see it: the cache lets the run go, the batch is loaded and
    folded from the store, and its write carries on from the stored version."""
    script = RunScript(run_id="r_elsewhere", docs=3, n=3, block_type="extract")
    rng = random.Random(3)
    passes = [script.passed(d, p, {"total": rng.choice([1, 2])}) for p in range(3) for d in script.doc_ids]
    cache = bulk.LiveCache()

    async def live(log, engine) -> None:
        async with running(Projector(log, engine, batch_size=2, catch_up=bulk.CatchUp(enabled=False),
                                     live_cache=cache)) as projector:
            first = await log.append(_messages([script.created(), script.started(), *passes[:4]]))
            assert await projector.wait(first[-1], 60)
            assert cache.lent > 0 and len(cache) == 1  # it holds the run
            async with engine.begin() as conn:
                moved = (await conn.execute(update(runs).where(runs.c.run_id == script.run_id)
                                            .values(version=runs.c.version + 5).returning(runs.c.version))).scalar()
            rest = await log.append(_messages(passes[4:]))
            assert await projector.wait(rest[-1], 60)
        assert cache.stale == 1  # seen in the write's transaction, once
        async with engine.connect() as conn:
            version = (await conn.execute(select(runs.c.version).where(runs.c.run_id == script.run_id))).scalar()
        assert version > moved  # the batches after it wrote on from the stored version, not the kept one

    await assert_live_equals_a_replay(store, request, tmp_path, live)


async def test_a_long_run_is_lent_with_the_documents_a_batch_touches(store, request, tmp_path):
    """The fold copies a run's documents map on every pass: lent whole, a run of 300
    documents would make each event cost 300 entries. It is lent with the documents the
    batch touches, and keeps the others for later batches."""
    script = RunScript(run_id="r_long", docs=300, n=3, block_type="extract")
    cache = bulk.LiveCache()
    lent: list[int] = []
    real = cache.lend

    def lend(batch, touched):
        held = real(batch, touched)
        lent.extend(len(state.documents) for key, state in batch.loaded.items() if key[0] == "run")
        return held

    cache.lend = lend
    passes = [script.passed(f"doc_{d}", p, {"total": p}) for d in (0, 7, 299) for p in range(3)]

    async def live(log, engine) -> None:
        async with running(Projector(log, engine, batch_size=2, catch_up=bulk.CatchUp(enabled=False),
                                     live_cache=cache)) as projector:
            created = await log.append(_messages([script.created(), script.started()]))
            assert await projector.wait(created[-1], 60)  # created in the cache: all 300 documents held
            done = await log.append(_messages(passes))
            assert await projector.wait(done[-1], 60)

    await assert_live_equals_a_replay(store, request, tmp_path, live)
    assert lent and max(lent) <= 2  # a batch of 2 passes touches at most 2 documents


async def assert_live_equals_a_replay(store, request, tmp_path, live) -> None:
    """`live(log, engine)` appends to an empty one-partition log and projects it as it goes;
    a clean replay of the log then leaves the same rows."""
    log = SqliteEventLog(tmp_path / "log.db", partitions=1)
    await log.start()
    try:
        await assert_same_rows(store, request, tmp_path, lambda engine: live(log, engine),
                               lambda engine: project(log, engine, 100, live_cache=None))
    finally:
        await log.close()


@contextlib.asynccontextmanager
async def running(projector: Projector):
    """The projector on partition 0, stopped on the way out; no partition stopped, nothing quarantined."""
    task = asyncio.create_task(projector.run(partitions=[0]))
    try:
        yield projector
    finally:
        projector.stop()
        await asyncio.wait_for(task, 30)
    assert not [p for p, s in projector.partitions.items() if s.stopped] and projector.quarantined_total == 0


def _messages(events):
    from events.codec import encode
    from events.log import Message
    return [Message(e.aggregate_id, encode(e)) for e in events]

