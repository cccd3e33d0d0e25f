"""Ingestion remembers the runs it has found (issue 11): a run seen once for an organisation
skips the read-model query, and the cache never lets through what the query would refuse:
another organisation's run is still a 404, and a run missing once is asked for again."""
from __future__ import annotations

from services.keys import store_key
from services.ledger import KnownRuns, Ledger
from tests.builders import RunScript
from tests.integration.test_read_your_writes import api, experiment, projecting, runtime  # noqa: F401 (fixtures)

OTHER_KEY = "rl_test_known_runs_org_b"


def a_pass(run_id: str, i: int) -> dict:
    return {"type": "DocumentPassCompleted", "run_id": run_id,
            "payload": {"document_id": "doc_0", "pass_index": i, "output": {"category": "invoice"}}}


async def log_end(runtime) -> int:
    return sum(end for end in (await runtime.log.end_offsets()).values())


async def test_a_run_is_known_after_it_is_found_for_its_organisation_only(runtime, api):
    script = RunScript(run_id="run_known", docs=1, n=3)
    known = api._transport.app.state.ledger.known_runs
    before = await log_end(runtime)

    missing = await api.post("/v1/ledger/events", json={"events": [a_pass(script.run_id, 0)]})
    assert missing.status_code == 404 and missing.json()["detail"]["details"]["run_ids"] == [script.run_id]
    assert len(known) == 0 and await log_end(runtime) == before  # a miss is not remembered, nothing appended

    positions = await Ledger(runtime).append([experiment("exp_1"), script.created(), script.queued()])
    async with projecting(runtime):
        assert await runtime.projector.wait(positions[-1], 30)
        found = await api.post("/v1/ledger/events", json={"events": [a_pass(script.run_id, 0)]})
        assert found.status_code == 202, found.text  # asked again, and found
        assert known.seen("org_a", script.run_id)

        await store_key(runtime.control, OTHER_KEY, "org_b")
        foreign = await api.post("/v1/ledger/events", json={"events": [a_pass(script.run_id, 1)]},
                                 headers={"Api-Key": OTHER_KEY})
        assert foreign.status_code == 404  # known for org_a, not for org_b
        mixed = await api.post("/v1/ledger/events", json={"events": [a_pass(script.run_id, 1), a_pass("run_nope", 0)]})
        assert mixed.status_code == 404 and mixed.json()["detail"]["details"]["run_ids"] == ["run_nope"]
        again = await api.post("/v1/ledger/events", json={"events": [a_pass(script.run_id, 1)]})
        assert again.status_code == 202
        assert not known.seen("org_b", script.run_id) and not known.seen("org_a", "run_nope")


def test_known_runs_are_bounded_and_forget_the_oldest_first():
    known = KnownRuns(capacity=3)
    for run in ("r1", "r2", "r3", "r4"):
        known.add("org", run)
    assert len(known) == 3
    assert not known.seen("org", "r1") and all(known.seen("org", run) for run in ("r2", "r3", "r4"))
    assert not known.seen("other", "r2")
