"""A rejected event is stored once: the log keeps its body, the event index only its
position, type, ids, time, producer and reason. History, as_of and verify still work."""
from __future__ import annotations

from sqlalchemy import select

from projections.runtime.verify import verify_run
from projections.store.tables import event_index
from services.ledger import Ledger
from tests.builders import RunScript
from tests.integration.test_read_your_writes import api, experiment, projecting, runtime  # noqa: F401 (fixtures)


async def test_a_rejected_event_keeps_no_indexed_body_and_reads_still_show_it(runtime, api):
    script = RunScript(run_id="run_rejected", docs=1, n=3)
    events = [script.created(), script.queued(), script.passed("doc_0", 0)]
    stray = script.passed("doc_unknown", 0)  # rejected mid-run: no such document
    events += [stray, script.passed("doc_0", 1), script.passed("doc_0", 2), script.cancel("too late")]  # rejected
    positions = await Ledger(runtime).append([experiment("exp_1"), *events])  # the run's experiment: visible
    async with projecting(runtime):
        assert await runtime.projector.wait(positions[-1], 30)

    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(select(event_index).where(event_index.c.aggregate_id == script.run_id)
                                   .order_by(event_index.c.offset))).all()
    assert [row.accepted for row in rows] == [True, True, True, False, True, True, False]
    rejected = [row for row in rows if not row.accepted]
    assert all(row.body is None and row.reason for row in rejected)  # stored once: in the log
    assert all(row.body is not None for row in rows if row.accepted)
    assert [row.event_id for row in rejected] == [str(stray.event_id), str(events[-1].event_id)]

    listed = await api.get(f"/v1/workflows/experiments/runs/{script.run_id}/events", params={"order": "asc"})
    assert listed.status_code == 200, listed.text
    history = listed.json()["data"]
    assert [item["status"] for item in history] == ["accepted"] * 3 + ["rejected"] + ["accepted"] * 2 + ["rejected"]
    shown = history[3]  # read back from the log at its position
    assert shown["event_id"] == str(stray.event_id) and shown["reason"] == rejected[0].reason
    assert shown["type"] == "DocumentPassCompleted" and shown["payload"]["document_id"] == "doc_unknown"
    assert history[-1]["payload"]["reason"] == "too late" and history[-1]["producer"] == "test"

    after_stray = (await api.get(f"/v1/workflows/experiments/runs/{script.run_id}",
                                 params={"as_of": history[3]["position"]})).json()
    assert after_stray["as_of_event_count"] == 4 and after_stray["lifecycle"]["status"] == "running"
    at_end = (await api.get(f"/v1/workflows/experiments/runs/{script.run_id}",
                            params={"as_of": history[-1]["position"]})).json()
    now = (await api.get(f"/v1/workflows/experiments/runs/{script.run_id}")).json()
    assert at_end["as_of_event_count"] == 7 and at_end["lifecycle"]["status"] == "completed"
    assert {k: v for k, v in at_end.items() if not k.startswith("as_of")} == now
    by_time = (await api.get(f"/v1/workflows/experiments/runs/{script.run_id}",
                             params={"as_of": history[3]["occurred_at"]})).json()
    assert by_time["as_of_event_count"] == 4 and by_time["lifecycle"]["status"] == "running"

    async with runtime.engine.connect() as conn:
        check = await verify_run(conn, runtime.log, script.run_id)
    assert check.ok and check.events == 7, check.differences
