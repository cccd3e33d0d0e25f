"""The projector against real stores: one transaction per batch, resume, poison, zombies.
Bugs (quarantine): test_projector_quarantine.py; transient faults: tests/fault/."""
from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from events.codec import encode
from events.log import Message
from projections.runtime.projector import PartitionStatus, Projector
from projections.store import views
from projections.store.tables import dead_letters, event_index
from tests.builders import RunScript, fold_all


async def append(log, events):
    return await log.append([Message(e.aggregate_id, encode(e)) for e in events])


async def project_until(projector: Projector, positions, timeout: float = 30):
    task = asyncio.create_task(projector.run())
    try:
        for position in positions:
            assert await projector.wait(position, timeout), f"projector did not reach {position}"
    finally:
        projector.stop()
        await asyncio.wait_for(task, 15)


async def read_run(engine, run_id: str, org: str = "org_a"):
    async with engine.connect() as conn:
        return await views.get_run_any(conn, run_id), await views.run_documents_of(conn, run_id)


@pytest.fixture
async def log(event_log):
    return event_log


async def test_the_read_model_equals_the_fold_of_the_same_events(log, engine):
    script = RunScript(docs=3, n=3)
    events = [script.created(), script.queued(), *script.all_passes(), script.cancel()]
    positions = await append(log, events)
    await project_until(Projector(log, engine), positions[-1:])
    expected, _ = fold_all(events)
    run, docs = await read_run(engine, script.run_id)
    assert run.status == expected.status == "completed"
    assert (run.completed_document_count, run.document_count, run.score) == (3, 3, expected.score)
    assert {d.document_id: d for d in docs} == dict(expected.documents)
    async with engine.connect() as conn:
        rejected = await conn.scalar(select(func.count()).where(event_index.c.accepted.is_(False)))
    assert rejected == 1  # the cancel after completion


async def test_a_restarted_projector_resumes_from_its_checkpoint(log, engine):
    script = RunScript(docs=4, n=3)
    passes = script.all_passes()
    first = await append(log, [script.created(), *passes[:5]])
    await project_until(Projector(log, engine, batch_size=2), first[-1:])
    second = await append(log, passes[5:] + passes[:3])  # the tail, plus three resent duplicates
    await project_until(Projector(log, engine, batch_size=3), second[-1:])
    run, _ = await read_run(engine, script.run_id)
    assert (run.status, run.completed_document_count, run.document_count) == ("completed", 4, 4)
    async with engine.connect() as conn:
        indexed = await conn.scalar(select(func.count()).select_from(event_index))
        accepted = await conn.scalar(select(func.count()).where(event_index.c.accepted.is_(True)))
        repeated = (await conn.execute(select(event_index.c.deliveries, event_index.c.last_offset)
                                       .where(event_index.c.deliveries.is_not(None)))).all()
    # The three resent passes are counted on their events' rows, not indexed again (issue 17).
    assert indexed == accepted == 1 + 12
    assert sorted(repeated) == [(2, p.offset) for p in second[-3:]]


async def test_poison_is_dead_lettered_and_the_partition_goes_on(log, engine):
    script = RunScript(docs=1, n=3)
    created = script.created()
    key = created.aggregate_id
    poison = [Message(key, b"\xffnot json"), Message(key, b'{"type": "Unknown"}')]
    positions = await log.append([Message(key, encode(created)), *poison,
                                  *[Message(key, encode(e)) for e in script.all_passes()]])
    projector = Projector(log, engine)
    await project_until(projector, positions[-1:])
    run, _ = await read_run(engine, script.run_id)
    assert run.status == "completed"
    async with engine.connect() as conn:
        reasons = (await conn.execute(select(dead_letters.c.offset, dead_letters.c.reason))).all()
    assert [offset for offset, _ in reasons] == [p.offset for p in positions[1:3]]
    assert "not JSON" in reasons[0][1] and "unknown event type" in reasons[1][1]
    assert projector.poison_total == 2


async def test_a_zombie_projector_cannot_commit_over_the_new_owner(log, engine):
    script = RunScript(docs=1, n=3)
    positions = await append(log, [script.created(), *script.all_passes()])
    owner = Projector(log, engine)
    await project_until(owner, positions[-1:])
    zombie = Projector(log, engine)
    partition = positions[0].partition
    zombie.partitions[partition] = PartitionStatus(next_offset=positions[0].offset)
    records = await log.read(partition, positions[0].offset, 100)
    await zombie.process(records)
    assert partition not in zombie.partitions  # it noticed it lost the partition
    async with engine.connect() as conn:
        indexed = await conn.scalar(select(func.count()).select_from(event_index))
    assert indexed == len(positions)
