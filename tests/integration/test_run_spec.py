"""A run's spec (its RunCreated payload: the documents, their handle inputs) is written once,
into `runs.spec`, and never again: the state a batch writes leaves it out, so a long run's
batches do not write its document list again and again (migration 0015). Rows written
before it have their spec moved out of their state, and read the same."""
from __future__ import annotations

import orjson
import pytest
from sqlalchemy import event, null, select, text, update

from projections.runtime.projector import Projector
from projections.store import backfill, views
from projections.store.database import create_schema
from projections.store.state_hash import state_hashes
from projections.store.tables import runs
from events.envelope import Event, new_event
from events.catalogue import ExperimentCreated
from tests.builders import RunScript
from tests.integration.test_projector import append, project_until


@pytest.fixture
async def log(event_log):
    return event_log


def run_updates(engine, measure) -> list[int]:
    """`measure(values)` (a list of sizes) of every UPDATE of a run's row the engine sends."""
    sizes: list[int] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE RUNS"):
            for params in (parameters if executemany else [parameters]):
                sizes.extend(measure(list(params.values() if isinstance(params, dict) else params)))

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    return sizes


def written_states(engine) -> list[int]:
    """The bytes of `runs.state` in every UPDATE of a run's row."""
    return run_updates(engine, lambda values: [len(v) for v in values
                                               if isinstance(v, str) and '"latest_fact_at"' in v])


def written_rows(engine) -> list[int]:
    """The bytes of the text values in every UPDATE of a run's row."""
    return run_updates(engine, lambda values: [sum(len(v) for v in values if isinstance(v, str))])


async def test_a_batch_writes_a_run_without_its_document_list(log, engine):
    small, large = (RunScript(run_id=f"run_{n}", docs=n, n=3) for n in (3, 300))
    created = await append(log, [small.created(), large.created(), small.started(), large.started()])
    await project_until(Projector(log, engine), created[-1:])
    sizes = written_states(engine)
    passes = await append(log, [s.all_passes()[0] for s in (small, large)])
    await project_until(Projector(log, engine), passes)
    assert len(sizes) == 2  # one write of each run's row
    assert abs(sizes[0] - sizes[1]) < 16  # the same state, whatever the run's size (ids differ)
    async with engine.connect() as conn:
        row = (await conn.execute(select(runs.c.state, runs.c.spec).where(runs.c.run_id == large.run_id))).one()
        run = await views.get_run_any(conn, large.run_id)
    assert "spec" not in row.state and len(row.spec["documents"]) == 300
    assert row.spec == large.created().payload.model_dump(mode="json")
    assert run.spec == row.spec and run.total_document_count == 300


async def test_rows_written_before_the_spec_column_are_moved_and_read_the_same(log, engine):
    scripts = [RunScript(run_id=f"run_{i}", docs=4, n=3) for i in range(3)]
    events = [e for s in scripts for e in (s.created(), s.started(), *s.all_passes()[:5])]
    positions = await append(log, events)
    await project_until(Projector(log, engine), positions[-1:])
    before = await state_hashes(engine)
    async with engine.connect() as conn:
        runs_before = [await views.get_run_any(conn, s.run_id) for s in scripts]
    async with engine.begin() as conn:  # as a row written before migration 0015: the spec inside the state
        for row in (await conn.execute(select(runs.c.run_id, runs.c.state, runs.c.spec))).all():
            await conn.execute(update(runs).where(runs.c.run_id == row.run_id)
                               .values(state={**row.state, "spec": row.spec}, spec=null()))
    async with engine.connect() as conn:
        assert [await views.get_run_any(conn, s.run_id) for s in scripts] == runs_before  # read from the state
    if engine.dialect.name == "sqlite":  # the embedded read model gains the column (and its values) at start
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE runs DROP COLUMN spec"))
        await create_schema(engine)
    else:  # PostgreSQL: what migration 0015 runs
        async with engine.begin() as conn:
            await conn.run_sync(backfill.run_specs)
    async with engine.connect() as conn:
        rows = (await conn.execute(select(runs.c.state, runs.c.spec))).all()
        assert [("spec" in row.state, len(row.spec["documents"])) for row in rows] == [(False, 4)] * 3
        assert [await views.get_run_any(conn, s.run_id) for s in scripts] == runs_before
    assert await state_hashes(engine) == before
    more = await append(log, [s.all_passes()[5] for s in scripts])
    await project_until(Projector(log, engine), more[-1:])  # and the projector goes on from them
    async with engine.connect() as conn:
        assert [len((await views.get_run_any(conn, s.run_id)).spec["documents"]) for s in scripts] == [4, 4, 4]


def filenames_of(script: RunScript) -> dict[str, str]:
    return {d.document_id: d.filename for d in script.created().payload.documents}


def experiment() -> Event:
    """exp_1, which RunScript's runs measure (a run is read only while its experiment is)."""
    return new_event(ExperimentCreated(workflow_id="wf_1", block_id="b1", name="e", n_consensus=3, documents=()),
                     aggregate_id="exp_1", org_id="org_a", producer="test")


async def summary_fields(engine, scripts) -> dict[str, dict]:
    async with engine.connect() as conn:
        return {s.run_id: (await views.get_run_summary(conn, s.org_id, s.run_id)).fields for s in scripts}


async def test_a_batch_writes_a_run_without_its_filenames(log, engine):
    """The metrics summary's filenames (a few dozen bytes a document) are written once, into
    `runs.filenames` (migration 0016): a batch writes the same bytes of a run's row
    whatever the run's size, and the summary still lists every document's filename."""
    small, large = (RunScript(run_id=f"run_{n}", docs=n, n=3) for n in (3, 300))
    created = await append(log, [experiment(), small.created(), large.created(), small.started(), large.started()])
    await project_until(Projector(log, engine), created[-1:])
    sizes = written_rows(engine)
    passes = await append(log, [s.all_passes()[0] for s in (small, large)])
    await project_until(Projector(log, engine), passes)
    assert len(sizes) == 2  # one write of each run's row
    assert abs(sizes[0] - sizes[1]) < 64, sizes  # whatever the run's size (ids differ)
    fields = await summary_fields(engine, [small, large])
    assert list(fields[large.run_id]["filenames"].items()) == list(filenames_of(large).items())  # in document order
    assert fields[small.run_id]["filenames"] == filenames_of(small)
    async with engine.connect() as conn:
        stored = (await conn.execute(select(runs.c.summary).where(runs.c.run_id == large.run_id))).scalar_one()
    assert "filenames" not in orjson.loads(stored)


async def test_rows_written_before_the_filenames_column_read_the_same(log, engine):
    """A row from before migration 0016 has no `runs.filenames`: its summary, written
    before, holds them; once the projector writes the row again its summary does not, and
    they are read from its spec. Either way the summary reads as it did, and the state hash
    and later batches do not change."""
    scripts = [RunScript(run_id=f"run_{i}", docs=4, n=3) for i in range(3)]
    positions = await append(log, [experiment()] + [e for s in scripts for e in (s.created(), s.started(),
                                                                               *s.all_passes()[:5])])
    await project_until(Projector(log, engine), positions[-1:])
    before, hashes = await summary_fields(engine, scripts), await state_hashes(engine)
    if engine.dialect.name == "sqlite":  # the embedded read model gains the column at start, NULL
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE runs DROP COLUMN filenames"))
        await create_schema(engine)
    async with engine.begin() as conn:
        await conn.execute(update(runs).values(filenames=null()))
        summary = (await conn.execute(select(runs.c.summary).where(runs.c.run_id == "run_0"))).scalar_one()
        old = orjson.dumps({**orjson.loads(summary), "filenames": filenames_of(scripts[0])}).decode()
        await conn.execute(update(runs).where(runs.c.run_id == "run_0").values(summary=old))  # as 0015 wrote it
    assert await summary_fields(engine, scripts) == before
    assert await state_hashes(engine) == hashes
    more = await append(log, [s.all_passes()[5] for s in scripts])
    await project_until(Projector(log, engine), more[-1:])  # each row written again: no filenames anywhere but the spec
    async with engine.connect() as conn:
        stored = (await conn.execute(select(runs.c.summary, runs.c.filenames))).all()
    assert [("filenames" in orjson.loads(row.summary), row.filenames) for row in stored] == [(False, None)] * 3
    after = await summary_fields(engine, scripts)
    assert [after[s.run_id]["filenames"] for s in scripts] == [filenames_of(s) for s in scripts]
