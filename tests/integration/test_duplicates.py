"""Duplicates cost nothing (issue 17): a fact reported again is answered at the door with
where it already is and not appended; one that reaches the log anyway (a producer writing to
the log directly, or a resend the projector had not applied yet) is counted on its event's
row of the index, never indexed or folded again, and the log keeps every record. On the
embedded default and on Kafka + PostgreSQL."""
from __future__ import annotations

from sqlalchemy import select

from events.log import Position
from projections.runtime.verify import verify_run
from projections.store.tables import event_deliveries, event_index
from services.ledger import Ledger
from tests.builders import RunScript
from tests.costs import counting
from tests.integration.test_bounded_history import client, projecting, runtime  # noqa: F401 (fixtures)
from tests.integration.test_read_your_writes import experiment


def a_pass(run_id: str, i: int, document: str = "doc_0") -> dict:
    return {"type": "DocumentPassCompleted", "run_id": run_id,
            "payload": {"document_id": document, "pass_index": i, "output": {"total": i}}}


async def log_records(runtime) -> int:
    return sum((await runtime.log.end_offsets()).values())


async def created(runtime, script: RunScript) -> None:
    positions = await Ledger(runtime).append([experiment("exp_1"), script.created(), script.queued()])
    async with projecting(runtime) as projector:
        assert await projector.wait(positions[-1], 60)


async def indexed(runtime, run_id: str) -> list:
    async with runtime.engine.connect() as conn:
        return (await conn.execute(select(event_index).where(event_index.c.aggregate_id == run_id)
                                   .order_by(event_index.c.offset))).all()


async def test_a_fact_reported_again_is_answered_at_the_door_and_not_appended(runtime, client):
    script = RunScript(run_id="run_door", docs=1, n=3, block_type="extract")
    await created(runtime, script)
    first = await client.post("/v1/ledger/events", json={"events": [a_pass(script.run_id, 0)]})
    assert first.status_code == 202 and "x-runledger-duplicate" not in first.headers
    async with projecting(runtime) as projector:
        assert await projector.wait(Position.parse(first.json()["positions"][0]), 60)
    before = await log_records(runtime)

    with counting() as cost:
        again = await client.post("/v1/ledger/events", json={"events": [a_pass(script.run_id, 0)]})
    assert again.status_code == 200, again.text
    assert again.headers["x-runledger-duplicate"] == "true"
    assert again.json()["positions"] == first.json()["positions"]  # its original position
    assert again.json()["events"][0]["duplicate"] is True
    assert again.headers["x-runledger-position"] == first.json()["positions"][0]
    assert await log_records(runtime) == before and cost.log_reads == 0
    assert sum("event_index" in sql for sql in cost.sql) == 1, cost.sql  # one indexed lookup for the ids

    mixed = await client.post("/v1/ledger/events", json={"events": [
        a_pass(script.run_id, 0), a_pass(script.run_id, 1), a_pass(script.run_id, 1)]})
    assert mixed.status_code == 202 and mixed.headers["x-runledger-duplicate"] == "partial"
    answered = mixed.json()["events"]
    assert [e["duplicate"] for e in answered] == [True, False, True]
    assert answered[0]["position"] == first.json()["positions"][0]
    assert answered[1]["position"] == answered[2]["position"]  # the second is the first of this request
    assert await log_records(runtime) == before + 1  # only the new pass was appended


async def test_a_resend_the_projector_had_not_applied_is_counted_on_its_row(runtime, client):
    script = RunScript(run_id="run_resent", docs=1, n=3, block_type="extract")
    await created(runtime, script)
    answers = [await client.post("/v1/ledger/events", json={"events": [a_pass(script.run_id, 0)]}) for _ in range(2)]
    assert [a.status_code for a in answers] == [202, 202]  # not projected yet: both appended
    async with projecting(runtime) as projector:
        assert await projector.wait(Position.parse(answers[1].json()["positions"][0]), 60)
    rows = [r for r in await indexed(runtime, script.run_id) if r.type == "DocumentPassCompleted"]
    assert len(rows) == 1 and rows[0].deliveries == 2
    assert rows[0].last_offset == Position.parse(answers[1].json()["positions"][0]).offset


async def test_duplicates_written_straight_to_the_log_collapse_into_one_row(runtime, client):
    script = RunScript(run_id="run_direct", docs=1, n=3, block_type="extract")
    await created(runtime, script)
    fact = script.passed("doc_0", 0, {"total": 7})
    positions = await Ledger(runtime).append([fact, fact])  # a producer writing to the log itself
    async with projecting(runtime) as projector:  # a batch of its own, then one more delivery in the next one
        assert await projector.wait(positions[-1], 60)
        positions += await Ledger(runtime).append([fact])
        assert await projector.wait(positions[-1], 60)

    rows = [r for r in await indexed(runtime, script.run_id) if r.event_id == str(fact.event_id)]
    assert len(rows) == 1 and rows[0].accepted  # one row per accepted event...
    assert (rows[0].offset, rows[0].deliveries, rows[0].last_offset) == (positions[0].offset, 3, positions[-1].offset)
    async with runtime.engine.connect() as conn:
        repeats = (await conn.execute(select(event_deliveries.c.offset).where(
            event_deliveries.c.aggregate_id == script.run_id).order_by(event_deliveries.c.offset))).scalars().all()
    assert repeats == [p.offset for p in positions[1:]]
    assert len(await runtime.log.read(positions[0].partition, positions[0].offset, 10)) >= 3  # ...the log keeps all

    history = (await client.get(f"/v1/workflows/experiments/runs/{script.run_id}/events",
                                params={"order": "asc"})).json()["data"]
    shown = [item for item in history if item["event_id"] == str(fact.event_id)]
    assert len(shown) == 1 and shown[0]["deliveries"] == 3
    assert shown[0]["last_position"] == positions[-1].token()
    run = (await client.get(f"/v1/workflows/experiments/runs/{script.run_id}")).json()
    assert run["document_count"] == 1  # counted once
    async with runtime.engine.connect() as conn:
        check = await verify_run(conn, runtime.log, script.run_id)  # the refold collapses them the same way
    assert check.ok, [d.describe() for d in check.differences]
