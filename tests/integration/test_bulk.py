"""A bulk catch-up (projections/runtime/bulk.py) writes exactly the rows batches write.

The same log is projected twice into empty read models: by a projector that works in
batches only, and by one that works in bulk (small polls and flushes, so a catch-up takes
many flushes; a tiny cache budget, so aggregates are dropped and read back). Every column of
every projected table (the read columns included) and the state hashes must be equal: on the
recorded log, on runs built from the consensus golden corpus, and on generated histories
(interleaved runs, duplicates, retries, cancels, other organisations, poison), on SQLite
and PostgreSQL.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import random
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import JSON, Text, cast, select

from events.catalogue import DocumentPassCompleted, DocumentPassFailed, ErrorInfo
from events.codec import encode
from events.log import Message, Position
from events.sqlite_log import SqliteEventLog
from projections.runtime import bulk
from projections.runtime.projector import Projector
from projections.store.database import make_engine, prepare_schema
from projections.store.row_versions import VERSIONS
from projections.store.state_hash import canonical, state_hashes
from projections.store.tables import metadata
from tests.builders import RunScript
from tests.conftest import _store_params, new_postgres_database
from tests.fixtures.recorded_log.replay import embedded_log, read_records

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = json.loads((ROOT / "tests/fixtures/consensus_golden.json").read_text())


@pytest.fixture(params=_store_params())
def store(request):
    return request.param


async def fresh_engine(store: str, request, tmp_path, name: str):
    if store == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / f'{name}-{uuid.uuid4().hex[:6]}.db'}"
    else:
        url = await new_postgres_database(request.getfixturevalue("postgres_url"))
    engine = make_engine(url)
    await prepare_schema(url, engine)
    return engine


async def project_all(log, engine, catch_up: bulk.CatchUp, batch_size: int, live_cache=True) -> Projector:
    """Every record of `log` into `engine`, polls of at most `batch_size`; no partition stopped."""
    ends = await log.end_offsets()
    projector = Projector(log, engine, batch_size=batch_size, catch_up=catch_up, live_cache=live_cache)
    task = asyncio.create_task(projector.run(partitions=sorted(ends)))
    try:
        for partition, end in ends.items():
            if end:
                assert await projector.wait(Position(partition, end - 1), 120), f"partition {partition} stuck"
    finally:
        projector.stop()
        await asyncio.wait_for(task, 30)
    assert not [p for p, s in projector.partitions.items() if s.stopped]
    return projector


BOOKKEEPING = {"projector_heartbeats", "org_versions"}
"""Not compared: heartbeats, and the per-batch version counters (with `VERSIONS`' columns:
+1 per write of a row, so they count the writes, which a flush makes fewer of by design;
projections/store/row_versions.py). `test_versions_count_a_flush_as_one_write` checks them."""


async def all_rows(engine) -> dict[str, list]:
    """Every column of every projected table (the history's, the notary's tiles and segments,
    the read columns and `runs.passes` included), in key order; JSON columns as the text
    stored (a JSON null and an SQL NULL differ here)."""
    rows = {}
    async with engine.connect() as conn:
        for table in metadata.sorted_tables:
            if table.name in BOOKKEEPING:
                continue
            columns = [cast(c, Text) if isinstance(c.type, JSON) else c for c in table.columns
                       if c.name not in VERSIONS.get(table.name, ())]
            found = (await conn.execute(select(*columns).order_by(*table.primary_key.columns))).all()
            rows[table.name] = [[canonical(v) for v in row] for row in found]
    return rows


async def assert_same_rows(store, request, tmp_path, reference, candidate, *also) -> None:
    """`candidate(engine)` and `reference(engine)`, each projecting into an empty read model,
    leave the same rows (every column but the write counters) and state hashes, and the same
    value of each of `also(engine)`."""
    first = await fresh_engine(store, request, tmp_path, "reference")
    second = await fresh_engine(store, request, tmp_path, "candidate")
    try:
        await reference(first)
        await candidate(second)
        assert await all_rows(second) == await all_rows(first)
        assert await state_hashes(second) == await state_hashes(first)
        for measure in also:
            assert await measure(second) == await measure(first)
    finally:
        await first.dispose()
        await second.dispose()


async def assert_bulk_equals_batches(log, store, request, tmp_path, *, batch_size=7, flush_records=23,
                                     cache_budget=200_000) -> bulk.AggregateCache:
    catch_up = bulk.CatchUp(flush_records=flush_records, cache_budget=cache_budget)
    await assert_same_rows(store, request, tmp_path,
                           lambda engine: project_all(log, engine, bulk.CatchUp(enabled=False), batch_size),
                           lambda engine: project_all(log, engine, catch_up, batch_size))
    return catch_up.cache


async def test_the_recorded_log_folds_in_bulk_to_the_rows_batches_write(store, request, tmp_path):
    log = await embedded_log(tmp_path / "recorded.db", read_records())
    try:
        cache = await assert_bulk_equals_batches(log, store, request, tmp_path, batch_size=3, flush_records=5)
    finally:
        await log.close()
    assert cache.flushes >= 8 and cache.lent > 0  # it did work in bulk, from kept states


async def append(log, events) -> None:
    await log.append([Message(e.aggregate_id, encode(e)) for e in events])


def golden_runs() -> list:
    """A run per corpus case with 3, 5 or 7 votes: its passes are the case's votes (a failed
    pass where the vote is None), in shuffled order."""
    rng, events = random.Random(5), []
    for i, case in enumerate(c for c in GOLDEN if len(c["votes"]) in (3, 5, 7)):
        script = RunScript(run_id=f"golden_{i}", docs=2, n=len(case["votes"]), block_type=case["block_type"],
                           config=case["config"])
        passes = []
        for doc in script.doc_ids:
            for p, vote in enumerate(case["votes"]):
                passes.append(script.failed(doc, p) if vote is None else
                              script.event(DocumentPassCompleted(document_id=doc, pass_index=p, output=vote)))
        rng.shuffle(passes)
        events += [script.created(), script.started(), *passes]
    return events


@contextlib.asynccontextmanager
async def golden_log(tmp_path):
    """An embedded log of `golden_runs()`, closed on the way out."""
    log = SqliteEventLog(tmp_path / "golden.db", partitions=3)
    await log.start()
    try:
        await append(log, golden_runs())
        yield log
    finally:
        await log.close()


async def test_the_golden_corpus_folds_in_bulk_to_the_rows_batches_write(store, request, tmp_path):
    async with golden_log(tmp_path) as log:
        cache = await assert_bulk_equals_batches(log, store, request, tmp_path, batch_size=9, flush_records=40)
    assert cache.flushes >= 3 and cache.dropped > 0  # the budget made it drop states and read them back


async def test_a_restart_after_downtime_catches_up_in_bulk_to_the_rows_batches_write(store, request, tmp_path):
    """Half the log projected in batches, the rest appended while no projector ran, then
    caught up in bulk: the runs it finds in the store are read as a batch reads them (only
    the documents touched), kept so, and the documents later flushes touch are read then."""
    catch_up = bulk.CatchUp(flush_records=6)
    await assert_a_restart_projects_as_a_clean_replay(
        store, request, tmp_path, lambda log, engine: project_all(log, engine, catch_up, 3),
        lambda log, engine: project_all(log, engine, bulk.CatchUp(enabled=False), 100))
    assert catch_up.cache.flushes >= 5


async def assert_a_restart_projects_as_a_clean_replay(store, request, tmp_path, after_restart, clean) -> None:
    """Half the log (each run created, one pass of its first document) projected by `clean`,
    the rest appended while nothing ran, then projected by `after_restart`: the rows a clean
    replay (`clean`) leaves. `after_restart` finds the runs in the store, read as a batch
    reads them (the documents touched)."""
    scripts = [RunScript(run_id=f"r{i}", docs=4, n=3, block_type="extract") for i in range(5)]
    first = [e for s in scripts for e in (s.created(), s.started(), s.passed("doc_0", 0, {"v": 1}))]
    rest = [s.passed(d, p, {"v": p % 2}) for p in range(3) for d in ("doc_1", "doc_2", "doc_3", "doc_0")
            for s in scripts if (d, p) != ("doc_0", 0)]
    log = SqliteEventLog(tmp_path / "log.db", partitions=2)
    await log.start()

    async def restarted(engine) -> None:
        await append(log, first)
        await clean(log, engine)
        await append(log, rest)
        await after_restart(log, engine)

    try:
        await assert_same_rows(store, request, tmp_path, restarted, lambda engine: clean(log, engine))
    finally:
        await log.close()


@st.composite
def histories(draw):
    """Several runs' events interleaved: passes (some disagreeing), retries, final failures,
    duplicates, cancels and run failures, an event from another organisation, a pass for an
    unknown document; plus poison records."""
    events, poison = [], []
    for r in range(draw(st.integers(1, 4))):
        script = RunScript(run_id=f"h{r}", docs=draw(st.integers(1, 3)), n=3, block_type="extract")
        own = [script.queued(), script.started()]
        for doc in script.doc_ids:
            for p in range(3):
                kind = draw(st.sampled_from(["pass", "pass", "pass", "fail", "retry"]))
                if kind == "retry":
                    own.append(script.failed(doc, p, final=False, attempt=1))
                if kind == "fail":
                    own.append(script.event(DocumentPassFailed(document_id=doc, pass_index=p, final=True,
                                                               error=ErrorInfo(message="x"))))
                else:
                    output = {"total": draw(st.sampled_from([10, 10.5, 11])), "vendor": draw(st.sampled_from("ab"))}
                    own.append(script.event(DocumentPassCompleted(document_id=doc, pass_index=p, output=output)))
        if draw(st.booleans()):
            own.append(script.passed("no_such_doc", 0))
        if draw(st.integers(0, 4)) == 0:
            own.append(script.cancel())
        if draw(st.integers(0, 6)) == 0:
            own.append(script.run_failed())
        if draw(st.booleans()):
            own.append(script.event(script_started_payload(), org_id="org_b"))
        own = draw(st.permutations(own))
        own += draw(st.lists(st.sampled_from(own), max_size=3)) if own else []  # redeliveries
        events.append([script.created(), *own])
    merged = []
    while any(events):
        chosen = draw(st.sampled_from([e for e in events if e]))
        merged.append(chosen.pop(0))
    if draw(st.booleans()):
        poison = [b"not json", b'{"type": "Nope"}']
    return merged, poison


def script_started_payload():
    from events.catalogue import RunStarted
    return RunStarted(worker="intruder")


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(history=histories())
async def test_generated_histories_fold_in_bulk_to_the_rows_batches_write(store, request, tmp_path_factory, history):
    tmp_path = tmp_path_factory.mktemp("history")
    async with history_log(tmp_path, history) as log:
        await assert_bulk_equals_batches(log, store, request, tmp_path, batch_size=4, flush_records=9,
                                         cache_budget=50_000)


@contextlib.asynccontextmanager
async def history_log(tmp_path, history):
    """An embedded log of a generated history (`histories()`): its events, then its poison."""
    events, poison = history
    log = SqliteEventLog(tmp_path / "log.db", partitions=2)
    await log.start()
    try:
        await append(log, events)
        if poison:
            await log.append([Message("h0", raw) for raw in poison])
        yield log
    finally:
        await log.close()


async def test_versions_count_a_flush_as_one_write(store, request, tmp_path):
    """Row versions (projections/store/row_versions.py) count the writes of a row: a run
    caught up in one flush is at version 1 with its documents, where batches wrote it many
    times; later writes go on from the stored version, whichever path made it."""
    scripts = [RunScript(run_id=f"r{i}", docs=4, n=3, block_type="extract") for i in range(5)]
    first = [e for s in scripts for e in (s.created(), s.started(), *(s.passed(f"doc_{d}", 0, {"v": 1})
                                                                        for d in range(4)))]
    rest = [s.passed(f"doc_{d}", p, {"v": p % 2}) for p in (1, 2) for d in range(4) for s in scripts]
    log = SqliteEventLog(tmp_path / "log.db", partitions=2)
    await log.start()
    batches = await fresh_engine(store, request, tmp_path, "batches")
    in_bulk = await fresh_engine(store, request, tmp_path, "bulk")
    try:
        await append(log, first)
        await project_all(log, batches, bulk.CatchUp(enabled=False), 3)
        catch_up = bulk.CatchUp(flush_records=100_000)
        await project_all(log, in_bulk, catch_up, 3)
        assert catch_up.cache.flushes == 2  # one per partition, at the end of the catch-up
        assert set(await versions(in_bulk)) == {(1, 1)}
        assert max(run for run, _ in await versions(batches)) > 1
        await append(log, rest)
        moved = []
        for engine in (batches, in_bulk):
            before = dict(await run_versions(engine))
            await project_all(log, engine, bulk.CatchUp(enabled=False), 3)  # the same batches for both
            after = dict(await run_versions(engine))
            moved.append({run: after[run] - before[run] for run in after})
        assert moved[0] == moved[1] and min(moved[0].values()) > 0
        assert await all_rows(in_bulk) == await all_rows(batches)
    finally:
        await log.close()
        await batches.dispose()
        await in_bulk.dispose()


async def versions(engine) -> list[tuple[int, int]]:
    """(run version, document version) of every document row."""
    from projections.store.tables import run_documents, runs
    async with engine.connect() as conn:
        query = select(runs.c.version, run_documents.c.version).join(
            run_documents, run_documents.c.run_id == runs.c.run_id)
        return [tuple(row) for row in (await conn.execute(query)).all()]


async def run_versions(engine) -> list[tuple[str, int]]:
    from projections.store.tables import runs
    async with engine.connect() as conn:
        return [tuple(row) for row in (await conn.execute(select(runs.c.run_id, runs.c.version))).all()]
