"""Idempotency holds across faults (issue 18, finding 1): a transient fault at any step of
a create-run or a cancel, then the same request again with the same `Idempotency-Key`,
leaves exactly one run and one accepted cancel.

Each step fails once, in process, with the error a real fault raises there: a read of the
read model (a dropped connection), the append (refused, or written with its answer lost:
the ambiguous case of a Kafka send that timed out), the wait for the projection, the read
of the answer, and the idempotency record's own write. Embedded, and Kafka + PostgreSQL
when both are enabled."""
from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from projections.store import views
from projections.store.tables import event_index
from services.api import idempotency
from services.api.app import create_app
from services.bootstrap import start_runtime
from services.keys import store_key
from services.settings import Settings
from tests.conftest import fresh_database_url, server_backends

pytestmark = pytest.mark.timeout(240)
KEY = "rl_test_idempotency_faults"
RUNS = "/v1/workflows/experiments/runs"


@pytest.fixture(params=server_backends())
async def api(request, tmp_path):
    settings = Settings(data_dir=tmp_path / "data", wait_timeout=5.0, fold_processes=0)
    if request.param == "kafka+postgres":
        settings = settings.with_(database_url=await fresh_database_url("postgres", request, tmp_path),
                                  kafka_bootstrap=request.getfixturevalue("kafka_bootstrap").bootstrap,
                                  topic=f"idem-{uuid.uuid4().hex[:10]}")
    runtime = await start_runtime(settings)
    await store_key(runtime.control, KEY, "org_a")
    app = create_app(runtime)
    try:
        async with app.router.lifespan_context(app):  # runs the projector
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api", headers={"Api-Key": KEY},
                                         timeout=60) as client:
                client.app, client.runtime = app, runtime
                yield client
    finally:
        await runtime.close()


def db_fault() -> OperationalError:
    """What SQLAlchemy raises when the store drops a connection mid-statement."""
    return OperationalError("SELECT ...", {}, sqlite3.OperationalError("database is locked"))


class Faults:
    """Makes one call of a function fail, once: before it runs, or after (its work done,
    its answer lost)."""

    def __init__(self, monkeypatch):
        self.monkeypatch = monkeypatch
        self.raised = 0

    def once(self, owner, name: str, error: Exception, nth: int = 1, after: bool = False) -> None:
        real, calls = getattr(owner, name), [0]

        async def failing(*args, **kwargs):
            calls[0] += 1
            if calls[0] != nth:
                return await real(*args, **kwargs)
            self.raised += 1
            if after:
                await real(*args, **kwargs)
            raise error

        self.monkeypatch.setattr(owner, name, failing)


async def settled(api, response: httpx.Response) -> httpx.Response:
    """Wait until the projection shows a write (even one answered 202)."""
    assert response.status_code < 300, response.text
    token = response.headers.get("x-runledger-position", "")
    for _ in range(300):
        if (await api.get("/v1/ledger/whoami", headers={"x-runledger-position": token})).status_code == 200:
            return response
        await asyncio.sleep(0.1)
    raise AssertionError("the write never became visible")


async def experiment(api) -> str:
    await settled(api, await api.put("/v1/workflows/wf/blocks/b", json={"type": "classifier", "config": {}}))
    doc = {"handle_inputs": {"doc": {"type": "json", "data": {"text": "invoice"}}}}
    created = await api.post("/v1/workflows/experiments", json={"workflow_id": "wf", "block_id": "b",
                                                               "documents": [doc]})
    return (await settled(api, created)).json()["id"]


async def until_answered(api, method: str, path: str, body: dict, key: str) -> list[httpx.Response]:
    """The client's side: send, and send again while the answer invites a retry."""
    answers = []
    for _ in range(20):
        answer = await api.request(method, path, json=body, headers={"Idempotency-Key": key})
        answers.append(answer)
        if answer.status_code not in (409, 503):
            return answers
        await asyncio.sleep(0.05)
    raise AssertionError(f"no answer but retries: {[(a.status_code, a.text[:200]) for a in answers]}")


async def accepted_events(api, aggregate_id: str, event_type: str) -> int:
    async with api.runtime.engine.connect() as conn:
        return await conn.scalar(select(func.count()).select_from(event_index).where(
            event_index.c.aggregate_id == aggregate_id, event_index.c.type == event_type,
            event_index.c.accepted.is_(True)))


AFTER_THE_APPEND = {"waiting for the projection", "reading the new run", "reading the cancelled run"}
CREATE_STEPS = {
    "reading the experiment": lambda api, faults: faults.once(views, "get_experiment", db_fault()),
    "reading the parent run": lambda api, faults: faults.once(views, "latest_run", db_fault()),
    "appending (refused)": lambda api, faults: faults.once(api.runtime.log, "append", TimeoutError("send")),
    "appending (answer lost)": lambda api, faults: faults.once(api.runtime.log, "append", TimeoutError("ack"),
                                                               after=True),
    "waiting for the projection": lambda api, faults: faults.once(api.app.state.ledger, "settle", db_fault()),
    "reading the new run": lambda api, faults: faults.once(views, "get_run", db_fault()),
    "storing the answer": lambda api, faults: faults.once(idempotency, "_store", db_fault()),
}


@pytest.mark.parametrize("step", list(CREATE_STEPS))
async def test_a_create_that_meets_a_fault_and_is_retried_makes_one_run(api, monkeypatch, step):
    experiment_id = await experiment(api)
    faults = Faults(monkeypatch)
    CREATE_STEPS[step](api, faults)

    answers = await until_answered(api, "POST", RUNS, {"experiment_id": experiment_id}, "create-once")
    assert faults.raised == 1
    if step in AFTER_THE_APPEND:  # the run exists: that is the answer, kept for the retry
        assert [a.status_code for a in answers] == [202], answers[0].text
    assert all(a.status_code in (201, 202, 503) for a in answers), [(a.status_code, a.text) for a in answers]
    final = await settled(api, answers[-1])
    monkeypatch.undo()

    again = await api.post(RUNS, json={"experiment_id": experiment_id}, headers={"Idempotency-Key": "create-once"})
    if step == "storing the answer":  # the answer was given but not kept: the retry runs again, same ids
        assert "idempotent-replayed" not in again.headers and again.json()["id"] == final.json()["id"]
        again = await api.post(RUNS, json={"experiment_id": experiment_id}, headers={"Idempotency-Key": "create-once"})
    assert again.headers.get("idempotent-replayed") == "true" and again.json()["id"] == final.json()["id"]
    listed = await api.get(RUNS, params={"experiment_id": experiment_id},
                           headers={"x-runledger-position": final.headers.get("x-runledger-position", "")})
    assert [run["id"] for run in listed.json()["data"]] == [final.json()["id"]]
    assert await accepted_events(api, final.json()["id"], "RunCreated") == 1


CANCEL_STEPS = {
    "reading the run": lambda api, faults: faults.once(views, "get_run", db_fault()),
    "appending (refused)": lambda api, faults: faults.once(api.runtime.log, "append", TimeoutError("send")),
    "appending (answer lost)": lambda api, faults: faults.once(api.runtime.log, "append", TimeoutError("ack"),
                                                               after=True),
    "waiting for the projection": lambda api, faults: faults.once(api.app.state.ledger, "settle", db_fault()),
    "reading the cancelled run": lambda api, faults: faults.once(views, "get_run", db_fault(), nth=2),
    "storing the answer": lambda api, faults: faults.once(idempotency, "_store", db_fault()),
}


@pytest.mark.parametrize("step", list(CANCEL_STEPS))
async def test_a_cancel_that_meets_a_fault_and_is_retried_cancels_once(api, monkeypatch, step):
    experiment_id = await experiment(api)
    run_id = (await settled(api, await api.post(RUNS, json={"experiment_id": experiment_id}))).json()["id"]
    faults = Faults(monkeypatch)
    CANCEL_STEPS[step](api, faults)

    answers = await until_answered(api, "POST", f"{RUNS}/{run_id}/cancel", {"reason": "once"}, "cancel-once")
    assert faults.raised == 1
    if step in AFTER_THE_APPEND:
        assert [a.status_code for a in answers] == [202], answers[0].text
    assert all(a.status_code in (200, 202, 503) for a in answers), [(a.status_code, a.text) for a in answers]
    final = await settled(api, answers[-1])
    monkeypatch.undo()

    with contextlib.suppress(KeyError):
        assert final.json()["id"] == run_id
    shown = await api.get(f"{RUNS}/{run_id}", headers={"x-runledger-position": final.headers.get(
        "x-runledger-position", "")})
    assert shown.json()["lifecycle"]["status"] == "cancelled"
    assert await accepted_events(api, run_id, "RunCancelRequested") == 1
