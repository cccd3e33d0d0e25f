"""Every wait on a dependency is bounded (issue 18, finding 6): a SQLite file locked by
another connection, a PostgreSQL statement held behind a lock, a Kafka broker gone. Each
request answers 503 `unavailable` with Retry-After and the dependency's name once its
bound has passed, never a 500 and never a hang; once the dependency is back, the same
request succeeds.

The client's patience (`PATIENCE`) is far beyond each bound set here and far below the
hang these used to be (a 30 s busy timeout, no statement timeout, no limit on a Kafka send)."""
from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid

import httpx
import pytest

from services.api.app import create_app
from services.bootstrap import start_runtime
from services.keys import store_key
from services.settings import Settings
from tests.conftest import BACKENDS, fresh_database_url

pytestmark = pytest.mark.timeout(300)
KEY = "rl_test_vanished_dependencies"
RUNS = "/v1/workflows/experiments/runs"
PATIENCE = 25.0


@contextlib.asynccontextmanager
async def api(settings: Settings, with_projector: bool = True):
    runtime = await start_runtime(settings.with_(fold_processes=0), with_projector=with_projector)
    await store_key(runtime.control, KEY, "org_a")
    app = create_app(runtime)
    try:
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api",
                                         headers={"Api-Key": KEY}) as client:
                yield runtime, client
    finally:
        await runtime.close()


async def patiently(request) -> httpx.Response:
    """In process there is no socket timeout: the client gives up after PATIENCE."""
    return await asyncio.wait_for(request, PATIENCE)


async def a_run(client) -> str:
    block = await client.put("/v1/workflows/wf/blocks/b", json={"type": "classifier", "config": {}})
    doc = {"handle_inputs": {"doc": {"type": "json", "data": {"text": "invoice"}}}}
    experiment = await client.post("/v1/workflows/experiments", json={"workflow_id": "wf", "block_id": "b",
                                                                      "documents": [doc]},
                                   headers={"x-runledger-position": block.headers["x-runledger-position"]})
    run = await client.post(RUNS, json={"experiment_id": experiment.json()["id"]},
                            headers={"x-runledger-position": experiment.headers["x-runledger-position"]})
    assert run.status_code == 201, run.text
    return run.json()["id"]


def started(run_id: str) -> dict:
    return {"events": [{"type": "RunStarted", "run_id": run_id, "payload": {"worker": "w"}}]}


def assert_unavailable(answer: httpx.Response, dependency: str) -> None:
    assert answer.status_code == 503, answer.text
    detail = answer.json()["detail"]
    assert detail["code"] == "unavailable" and detail["details"]["dependency"] == dependency, detail
    assert dependency in detail["message"] and answer.headers["retry-after"] == "1"


async def test_a_sqlite_log_locked_by_another_connection_answers_503(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", sqlite_busy_timeout=0.5)
    async with api(settings) as (_runtime, client):
        run_id = await a_run(client)
        holder = sqlite3.connect(settings.log_path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # a backup, a VACUUM, another process's long write
        try:
            answer = await patiently(client.post("/v1/ledger/events", json=started(run_id)))
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert_unavailable(answer, "SQLite")
        assert (await patiently(client.post("/v1/ledger/events", json=started(run_id)))).status_code == 202


@pytest.mark.postgres
@pytest.mark.skipif("postgres" not in BACKENDS, reason="needs RUNLEDGER_TEST_BACKENDS=postgres")
async def test_a_postgresql_statement_held_past_its_timeout_answers_503(request, tmp_path):
    import asyncpg

    url = await fresh_database_url("postgres", request, tmp_path)
    settings = Settings(data_dir=tmp_path / "data", database_url=url, postgres_timeout=0.5)
    async with api(settings, with_projector=False) as (_runtime, client):
        holder = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE")  # a migration, a VACUUM FULL
        try:
            through_the_route = await patiently(client.get(RUNS, params={"experiment_id": "exp_x"}))
            fast_path = await patiently(client.get(RUNS))  # straight on the asyncpg connection
        finally:
            await transaction.rollback()
            await holder.close()
        assert_unavailable(through_the_route, "PostgreSQL")
        assert_unavailable(fast_path, "PostgreSQL")
        assert (await patiently(client.get(RUNS))).status_code == 200


@pytest.mark.kafka
@pytest.mark.skipif("kafka" not in BACKENDS, reason="needs RUNLEDGER_TEST_BACKENDS=kafka")
async def test_an_append_while_the_broker_is_stopped_answers_503(tmp_path):
    from tests.infra import kafka_broker

    with kafka_broker(tmp_path / "kafka") as broker:  # its own: stopping the session's would break others
        settings = Settings(data_dir=tmp_path / "data", kafka_bootstrap=broker.bootstrap,
                            topic=f"vanish-{uuid.uuid4().hex[:8]}", kafka_timeout=2.0)
        async with api(settings) as (_runtime, client):
            run_id = await a_run(client)
            await asyncio.to_thread(broker.stop)
            try:
                answer = await patiently(client.post("/v1/ledger/events", json=started(run_id)))
            finally:
                await asyncio.to_thread(broker.start)
            assert_unavailable(answer, "Kafka")
            for _ in range(60):  # the producer reconnects on its own
                again = await patiently(client.post("/v1/ledger/events", json=started(run_id)))
                if again.status_code == 202:
                    break
                assert_unavailable(again, "Kafka")
                await asyncio.sleep(0.5)
            assert again.status_code == 202, again.text
