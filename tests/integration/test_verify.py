"""verify: a run's live rows against a refold of its own events; repair rewrites them."""
from __future__ import annotations

import pytest
from sqlalchemy import select, update

from projections.runtime import verify
from projections.runtime.projector import Projector
from projections.store.tables import document_targets, runs
from tests.builders import RunScript
from tests.integration.test_projector import append, project_until


async def _project_runs(log, engine) -> list[RunScript]:
    scripts = [RunScript(run_id="run_a", docs=3, n=3), RunScript(run_id="run_b", docs=2, n=3),
               RunScript(run_id="run_c", docs=2, n=3, block_type="extract")]
    a, b, c = scripts
    events = [a.created(), a.queued(), a.started(), *a.all_passes(), a.passed("doc_0", 0),  # a duplicate
              b.created(), b.passed("doc_0", 0), b.failed("doc_1", 0, final=False), b.cancel(),
              b.passed("doc_1", 1),  # rejected: after the cancel
              c.created(), *c.all_passes({"total": 12.5, "vendor": "Acme"})]
    positions = await append(log, events)
    await project_until(Projector(log, engine), positions)
    return scripts


async def _corrupt_counter(engine, run_id: str) -> None:
    async with engine.begin() as conn:
        state = await conn.scalar(select(runs.c.state).where(runs.c.run_id == run_id))
        state = {**state, "completed_document_count": state["completed_document_count"] + 1}
        await conn.execute(update(runs).where(runs.c.run_id == run_id).values(state=state))


async def _all(engine, log) -> list[verify.RunCheck]:
    return [check async for check in verify.verify_all(engine, log)]


async def test_an_untouched_model_verifies(event_log, engine):
    await _project_runs(event_log, engine)
    checks = await _all(engine, event_log)
    assert [c.run_id for c in checks] == ["run_a", "run_b", "run_c"]
    assert all(c.ok for c in checks), [d.describe() for c in checks for d in c.differences]
    assert all(c.live_hash == c.replayed_hash for c in checks)


async def test_a_counter_changed_behind_the_projectors_back_is_found_and_named(event_log, engine):
    await _project_runs(event_log, engine)
    await _corrupt_counter(engine, "run_b")
    checks = {c.run_id: c for c in await _all(engine, event_log)}
    assert checks["run_a"].ok and checks["run_c"].ok
    bad = checks["run_b"]
    assert not bad.ok and bad.live_hash != bad.replayed_hash
    first = bad.differences[0]
    assert (first.table, first.key, first.field) == ("runs", "run_b", "state.completed_document_count")
    assert first.live == first.replayed + 1


async def test_repair_rewrites_the_run_and_reports_what_changed(event_log, engine):
    await _project_runs(event_log, engine)
    await _corrupt_counter(engine, "run_a")
    async with engine.begin() as conn:  # and lose a consensus target row
        await conn.execute(document_targets.delete().where(document_targets.c.run_id == "run_c"))
    repaired = await verify.repair_run(engine, event_log, "run_a")
    assert [d.field for d in repaired.differences] == ["state.completed_document_count"]
    fixed_c = await verify.repair_run(engine, event_log, "run_c")
    assert {d.table for d in fixed_c.differences} == {"document_targets"}
    assert all(c.ok for c in await _all(engine, event_log))


async def test_an_unknown_run_is_not_found(event_log, engine):
    await _project_runs(event_log, engine)
    async with engine.connect() as conn:
        try:
            await verify.verify_run(conn, event_log, "run_nope")
        except verify.RunNotFound:
            return
    raise AssertionError("verify of an unknown run must raise RunNotFound")


@pytest.mark.parametrize("column", ["resource", "summary", "filenames"])
async def test_a_run_row_without_its_stored_read_column_verifies_and_a_wrong_one_is_found(event_log, engine, column):
    """Rows written before runs.resource (migration 0007), runs.summary (0008) or
    runs.filenames (0016) existed hold NULL there and are read by rendering their state
    (or spec): not a difference. A stored
    value must equal the rendering: one changed behind the projector's back is found."""
    await _project_runs(event_log, engine)
    async with engine.begin() as conn:
        await conn.execute(update(runs).where(runs.c.run_id == "run_a").values({column: None}))
        await conn.execute(update(runs).where(runs.c.run_id == "run_c").values({column: '{"id":"forged"}'}))
    checks = {c.run_id: c for c in await _all(engine, event_log)}
    assert checks["run_a"].ok and checks["run_a"].live_hash == checks["run_a"].replayed_hash
    assert checks["run_b"].ok
    assert not checks["run_c"].ok
    assert (checks["run_c"].differences[0].table, checks["run_c"].differences[0].field) == ("runs", column)
