"""Verification over HTTP is a job run by a worker process (services/verifications.py): the
request starts it and answers 202 with a status resource, reading nothing of the run's
history itself; an organisation runs one at a time (429 with Retry-After); the result
says what differs; another organisation cannot see it."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import insert, update

from projections.store.control import verifications as jobs
from projections.store.tables import run_documents
from services.keys import store_key
from services.verifications import LEASE, _now
from tests.conftest import BACKENDS
from tests.costs import counting
from tests.integration.test_metrics_summary import settled
from tests.integration.test_read_your_writes import api, projecting, runtime  # noqa: F401 (fixtures)

OTHER = "rl_test_verifications_org_b"


async def a_scored_run(runtime, api, docs: int = 6) -> str:
    await settled(runtime, await api.put("/v1/workflows/wf_v/blocks/b", json={"type": "extract", "config": {}}))
    exp = await settled(runtime, await api.post("/v1/workflows/experiments", json={
        "workflow_id": "wf_v", "block_id": "b", "n_consensus": 3,
        "documents": [{"handle_inputs": {"doc": {"type": "json", "data": {"n": i}}}} for i in range(docs)]}))
    run = await settled(runtime, await api.post("/v1/workflows/experiments/runs", json={"experiment_id": exp["id"]}))
    results = (await api.get("/v1/workflows/experiments/results", params={"run_id": run["id"], "limit": 100})).json()
    events = [{"type": "DocumentPassCompleted", "run_id": run["id"], "payload": {
        "document_id": r["document_id"], "pass_index": i, "output": {"total": i, "vendor": "ACME"}}}
        for r in results["data"] for i in range(3)]
    events += [{"type": "DocumentPassCompleted", "run_id": run["id"], "payload": {
        "document_id": f"doc_unknown_{i}", "pass_index": 0, "output": {"total": 0}}}
        for i in range(4)]  # unknown documents: rejected (a duplicate is answered at the door, not appended)
    await settled(runtime, await api.post("/v1/ledger/events", json={"events": events}))
    return run["id"]


async def finished(api, location: str, timeout: float = 120) -> dict:
    for _ in range(int(timeout / 0.1)):
        job = (await api.get(location)).json()
        if job["status"] not in ("queued", "running"):
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"{location} still {job['status']}")


async def test_a_verification_is_a_job_that_reads_nothing_of_the_run_on_the_request(runtime, api):
    await store_key(runtime.control, OTHER, "org_b")
    async with projecting(runtime):
        run_id = await a_scored_run(runtime, api)
        with counting() as cost:
            started = await api.post(f"/v1/ledger/runs/{run_id}/verifications")
        assert started.status_code == 202, started.text
        assert started.headers["location"] == f"/v1/ledger/verifications/{started.json()['id']}"
        assert started.json()["status"] == "queued" and started.json()["run_id"] == run_id
        background = sum(table in sql for sql in cost.sql for table in ("api_keys", "read_model_versions"))
        assert cost.log_records == 0 and cost.json_values == 0 and cost.rows <= 3 + background, cost  # its owner
        job = await finished(api, started.headers["location"])
        assert job["status"] == "completed", job
        assert job["result"]["ok"] and job["result"]["difference_count"] == 0
        assert job["progress"]["events_done"] == job["progress"]["events_total"] == job["result"]["events"] > 20
        theirs = await api.get(started.headers["location"], headers={"Api-Key": OTHER})
        assert theirs.status_code == 404

        async with runtime.engine.begin() as conn:
            await conn.execute(update(run_documents).where(run_documents.c.run_id == run_id).values(score=0.25))
        inline = await api.get(f"/v1/ledger/runs/{run_id}/verify")  # a small run: the check itself
        assert inline.status_code == 200, inline.text
        assert not inline.json()["ok"] and inline.json()["difference_count"] == 6
        assert {d["field"] for d in inline.json()["differences"]} == {"score"}
        assert (await api.get(f"/v1/ledger/runs/{run_id}/verify", headers={"Api-Key": OTHER})).status_code == 404
        assert (await api.get("/v1/ledger/runs/run_nope/verify")).status_code == 404


async def test_one_verification_per_organisation_at_a_time(runtime, api):
    await store_key(runtime.control, OTHER, "org_b")
    async with projecting(runtime):
        run_id = await a_scored_run(runtime, api, docs=2)
        now = _now()
        async with runtime.control.begin() as conn:  # org_a's job, running in some process
            await conn.execute(insert(jobs).values(
                verification_id="ver_running", org_id="org_a", run_id=run_id, status="running", active_org="org_a",
                events_total=100, events_done=0, created_at=now, started_at=now, heartbeat_at=now))
        refused = await api.post(f"/v1/ledger/runs/{run_id}/verifications")
        assert refused.status_code == 429 and refused.json()["detail"]["code"] == "verification_running"
        assert refused.json()["detail"]["details"]["verification_id"] == "ver_running"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert (await api.get(f"/v1/ledger/runs/{run_id}/verify")).status_code == 429

        async with runtime.control.begin() as conn:  # its process died: the heartbeat went stale
            await conn.execute(update(jobs).where(jobs.c.verification_id == "ver_running").values(
                heartbeat_at=now - timedelta(seconds=LEASE + 1)))
        abandoned = (await api.get("/v1/ledger/verifications/ver_running")).json()
        assert abandoned["status"] == "failed" and "abandoned" in abandoned["error"]
        started = await api.post(f"/v1/ledger/runs/{run_id}/verifications")
        assert started.status_code == 202, started.text
        assert (await finished(api, started.headers["location"]))["result"]["ok"]


@pytest.mark.parametrize("path", ["/v1/ledger/runs/run_x/verifications"])
async def test_another_organisations_run_is_not_there(runtime, api, path):
    await store_key(runtime.control, OTHER, "org_b")
    async with projecting(runtime):
        run_id = await a_scored_run(runtime, api, docs=1)
        assert (await api.post(path.replace("run_x", run_id), headers={"Api-Key": OTHER})).status_code == 404


@pytest.mark.kafka
@pytest.mark.postgres
@pytest.mark.skipif(not {"kafka", "postgres"} <= BACKENDS, reason="needs RUNLEDGER_TEST_BACKENDS with kafka,postgres")
async def test_a_verification_job_on_kafka_and_postgresql(request, tmp_path):
    """The worker process opens its own Kafka reader and PostgreSQL connection (the
    active read-model version's) from the server's settings."""
    import uuid

    import httpx

    from services.api.app import create_app
    from services.bootstrap import start_runtime
    from services.settings import Settings
    from tests.conftest import fresh_database_url
    from tests.integration.test_read_your_writes import KEY

    settings = Settings(data_dir=tmp_path / "data", kafka_bootstrap=request.getfixturevalue("kafka_bootstrap").bootstrap,
                        topic=f"verify-{uuid.uuid4().hex[:10]}",
                        database_url=await fresh_database_url("postgres", request, tmp_path), wait_timeout=10)
    runtime = await start_runtime(settings)
    await store_key(runtime.control, KEY, "org_a")
    transport = httpx.ASGITransport(app=create_app(runtime))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://runledger", headers={"Api-Key": KEY}) as api:
            async with projecting(runtime):
                run_id = await a_scored_run(runtime, api, docs=3)
                started = await api.post(f"/v1/ledger/runs/{run_id}/verifications")
                assert started.status_code == 202, started.text
                job = await finished(api, started.headers["location"])
        assert job["status"] == "completed" and job["result"]["ok"], job
        assert job["result"]["events"] == 3 * 3 + 4 + 1  # passes, rejected, RunCreated
    finally:
        await runtime.close()
