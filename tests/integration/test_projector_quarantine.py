"""Quarantine the run, not the partition: a fold bug on one run's valid event sets that run
aside (error recorded, later events parked) while every other run of its partition goes
on; after the fix, retrying the parked events gives what a clean replay gives."""
from __future__ import annotations

import pytest

from events.log import partition_for
from projections.runtime import batch as batch_module, quarantine, retry
from projections.runtime.projector import Projector
from projections.store import views
from projections.store.database import make_engine, prepare_schema
from tests.builders import RunScript
from tests.conftest import fresh_database_url
from tests.integration.test_projector import append, project_until
from tests.state_hash import state_hashes


def runs_sharing_a_partition(count: int, partitions: int) -> list[str]:
    """Run ids that all land in partition 0."""
    found, i = [], 0
    while len(found) < count:
        run_id = f"run_q{i}"
        if partition_for(run_id, partitions) == 0:
            found.append(run_id)
        i += 1
    return found


@pytest.fixture
async def log(event_log):
    return event_log


def bug_for(victim: str):
    real = batch_module.apply

    def buggy(state, event, *args, **kwargs):
        if event.aggregate_id == victim and event.type == "DocumentPassCompleted" and event.payload.pass_index == 2:
            raise ZeroDivisionError("simulated bug")
        return real(state, event, *args, **kwargs)

    return real, buggy


async def test_a_fold_bug_quarantines_its_run_and_the_partition_goes_on(log, engine, database_url, monkeypatch,
                                                                      tmp_path, request):
    healthy_a, victim, healthy_b = runs_sharing_a_partition(3, log.partitions)
    scripts = [RunScript(run_id=r, docs=2, n=3) for r in (healthy_a, victim, healthy_b)]
    created = await append(log, [s.created() for s in scripts])
    await project_until(Projector(log, engine), created[-1:])

    real, buggy = bug_for(victim)
    monkeypatch.setattr(batch_module, "apply", buggy)
    passes = [e for trio in zip(*(s.all_passes() for s in scripts)) for e in trio]  # interleaved
    positions = await append(log, passes)
    projector = Projector(log, engine, batch_size=4)
    await project_until(projector, positions[-1:])

    async with engine.connect() as conn:
        for run_id in (healthy_a, healthy_b):
            assert (await views.get_run_any(conn, run_id)).status == "completed"
        stuck = await views.get_run_any(conn, victim)
        listed = await quarantine.list_quarantined(conn)
    assert stuck.status != "completed"  # the batches before the failure applied, nothing after
    assert [(q.aggregate_id, q.kind) for q in listed] == [(victim, "run")]
    assert "ZeroDivisionError: simulated bug" in listed[0].error
    assert all(s.stopped is None for s in projector.partitions.values())
    assert projector.quarantined_total == 1

    late = await append(log, [scripts[1].passed("doc_0", 0)])  # a resend for the quarantined run: parked
    await project_until(Projector(log, engine), late)
    async with engine.connect() as conn:
        parked = await quarantine.parked_records(conn, "main", victim)
    assert late[0].offset in {r.offset for r in parked}
    assert len(parked) == listed[0].parked + 1

    failed_again = await retry.retry_parked(engine, victim)  # not fixed yet: nothing changes
    assert not failed_again.lifted and "simulated bug" in failed_again.error

    monkeypatch.setattr(batch_module, "apply", real)  # the fix ships
    outcome = await retry.retry_parked(engine, victim)
    assert outcome.lifted and outcome.applied == len(parked)
    async with engine.connect() as conn:
        assert (await views.get_run_any(conn, victim)).status == "completed"
        assert await quarantine.list_quarantined(conn) == []

    kind = "sqlite" if database_url.startswith("sqlite") else "postgres"
    (tmp_path / "replay").mkdir()
    replay_url = await fresh_database_url(kind, request, tmp_path / "replay")
    replay = make_engine(replay_url)
    await prepare_schema(replay_url, replay)
    try:
        await project_until(Projector(log, replay), late)
        assert await state_hashes(replay) == await state_hashes(engine)
    finally:
        await replay.dispose()
