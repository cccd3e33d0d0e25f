"""A run's spec (its RunCreated payload: the documents, their handle inputs) is written once,
into `runs.spec`, and never again: the state a batch writes leaves it out, so a long run's
batches do not write its document list again and again (migration 0015). Rows written
before it have their spec moved out of their state, and read the same."""
from __future__ import annotations

import pytest
from sqlalchemy import event, null, select, text, update

from projections.runtime.projector import Projector
from projections.store import backfill, views
from projections.store.database import create_schema
from projections.store.state_hash import state_hashes
from projections.store.tables import runs
from tests.builders import RunScript
from tests.integration.test_projector import append, project_until


@pytest.fixture
async def log(event_log):
    return event_log


def written_states(engine) -> list[int]:
    """The bytes of `runs.state` in every UPDATE of a run's row the engine sends."""
    sizes: list[int] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE RUNS"):
            for params in (parameters if executemany else [parameters]):
                values = params.values() if isinstance(params, dict) else params
                sizes.extend(len(v) for v in values if isinstance(v, str) and '"latest_fact_at"' in v)

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    return sizes


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
