"""The API on a full disk (issue 18.5): a write that cannot be stored answers 503
`storage_full` with `Retry-After`, never 500; reads keep working; `/healthz` says what is
wrong, with and without an admin key; when space returns, every acknowledged pass is
there once.

The log and the read model are filled in turn without a mount: SQLite answers SQLITE_FULL
("database or disk is full") exactly as on a full filesystem once a database reaches its
`max_page_count`. (tests/fault/test_full_disk.py fills a real filesystem under a server,
the control store included.)
"""
from __future__ import annotations

import asyncio
import contextlib

import httpx
from sqlalchemy import event

from events.catalogue import ExperimentCreated
from events.codec import encode
from events.envelope import new_event
from events.log import Message
from services.api.app import create_app
from services.bootstrap import start_runtime
from services.keys import store_key
from services.settings import Settings
from tests.builders import RunScript

TENANT, ADMIN, FRESH = "rl_full_tenant", "rl_full_admin", "rl_full_fresh"
DOCS = 40  # a batch of 40 passes needs pages the capped log does not have
UNLIMITED = 1 << 30


class Caps:
    """`max_page_count` of the log (set at once on its writer connection) and of the read
    model (applied on every checkout): `fill` caps a store at its current size."""

    def __init__(self, runtime):
        self.runtime, self.read_model_pages = runtime, UNLIMITED
        event.listen(runtime.engine.sync_engine, "checkout", self._cap_read_model)

    def _cap_read_model(self, dbapi_connection, _record, _proxy):
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA max_page_count={self.read_model_pages}")  # never below the current size
        cursor.close()

    async def fill(self, store: str) -> None:
        if store == "log":
            await self.runtime.log.on_writer(_cap_log, 1)
        else:
            self.read_model_pages = 1

    async def free(self) -> None:
        self.read_model_pages = UNLIMITED
        await self.runtime.log.on_writer(_cap_log, UNLIMITED)


def _cap_log(conn, pages: int) -> None:
    conn.execute(f"PRAGMA max_page_count={pages}")


@contextlib.asynccontextmanager
async def serving(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", wait_timeout=1.0, fold_processes=0, heartbeat_interval=0.3)
    runtime = await start_runtime(settings)
    for key, role in ((TENANT, "tenant"), (ADMIN, "admin"), (FRESH, "tenant")):
        await store_key(runtime.control, key, "org_a", role=role)
    app = create_app(runtime)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api",
                                         headers={"Api-Key": TENANT}) as client:
                yield runtime, client
    finally:
        await runtime.close()


def pass_event(run_id: str, document_id: str, pass_index: int) -> dict:
    return {"type": "DocumentPassCompleted", "run_id": run_id,
            "payload": {"document_id": document_id, "pass_index": pass_index, "output": {"category": "invoice"}}}


async def until(check, what: str, timeout: float = 30):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = await check()
        if got:
            return got
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_writes_answer_503_storage_full_reads_work_and_health_says_why(tmp_path):
    async with serving(tmp_path) as (runtime, client):
        caps = Caps(runtime)
        script = RunScript(run_id="run_full", docs=DOCS, n=3)
        experiment = new_event(ExperimentCreated(workflow_id="wf_1", block_id="b1", name="full", n_consensus=3,
                                                 documents=()), aggregate_id="exp_1", org_id="org_a", producer="test")
        made = await runtime.log.append([Message(e.aggregate_id, encode(e)) for e in (experiment, script.created())])
        for position in made:
            assert await runtime.projector.wait(position, 30)
        batches = [[pass_event(script.run_id, d, i) for d in script.doc_ids] for i in range(3)]
        assert (await client.post("/v1/ledger/events", json={"events": batches[0]})).status_code == 202

        await caps.fill("log")  # the disk fills: the log cannot take a batch of passes
        refused = await client.post("/v1/ledger/events", json={"events": batches[1]})
        assert refused.status_code == 503, refused.text
        assert refused.json()["detail"]["code"] == "storage_full"
        assert "storage is full" in refused.json()["detail"]["message"] and refused.headers["retry-after"] == "5"
        read = await client.get(f"/v1/workflows/experiments/runs/{script.run_id}")
        assert read.status_code == 200, read.text  # reads work
        public = await client.get("/healthz", headers={"Api-Key": ""})
        assert (public.status_code, public.json()) == (503, {"status": "degraded", "reasons": ["storage_full"]})
        admin = await client.get("/healthz", headers={"Api-Key": ADMIN})
        assert admin.status_code == 503, admin.text
        assert any(p.startswith("storage full: a write was refused") for p in admin.json()["problems"]), admin.json()

        await caps.free()
        await caps.fill("read_model")  # now only the read model is full: the log takes the passes
        accepted = await client.post("/v1/ledger/events", json={"events": batches[1]})
        assert accepted.status_code == 202, accepted.text  # ingestion does not wait for the projection
        retrying = await until(lambda: _retrying(client), "the projector to say it is retrying on a full store")
        assert "storage full" in retrying
        assert (await client.get(f"/v1/workflows/experiments/runs/{script.run_id}")).status_code == 200

        await caps.free()
        runtime.storage.window = 0.5  # the last refusal is soon forgotten
        assert (await client.post("/v1/ledger/events", json={"events": batches[2]})).status_code in (200, 202)
        run = await until(lambda: _completed(client, script.run_id), "the run to complete")
        assert run["completed_document_count"] == DOCS
        history = (await client.get(f"/v1/workflows/experiments/runs/{script.run_id}/events",
                                    params={"order": "asc", "limit": 1000})).json()["data"]
        passes = [(h["payload"]["document_id"], h["payload"]["pass_index"]) for h in history
                  if h["type"] == "DocumentPassCompleted" and h["status"] == "accepted"]
        assert len(passes) == len(set(passes)) == DOCS * 3  # every acknowledged pass, once
        await until(lambda: _healthy(client), "health to turn green once space is back")


async def test_a_key_whose_last_used_at_cannot_be_written_still_authenticates(tmp_path, monkeypatch):
    """The first use of a key writes its `last_used_at`; a store that refuses that write
    (here the genuine SQLITE_FULL of a capped database) must not fail the request: before
    issue 18 every request, `/healthz` with an admin key included, answered 500."""
    from services import keys
    from tests.unit.test_storage_full import sqlite_full_error

    full = sqlite_full_error(tmp_path)

    async def touch_on_a_full_disk(*_args):
        raise full

    monkeypatch.setattr(keys, "touch", touch_on_a_full_disk)
    async with serving(tmp_path) as (_runtime, client):
        assert (await client.get("/healthz", headers={"Api-Key": ADMIN})).status_code == 200
        assert (await client.get("/v1/workflows/experiments/runs", headers={"Api-Key": FRESH})).status_code == 200


async def _retrying(client) -> str | None:
    body = (await client.get("/healthz", headers={"Api-Key": ADMIN})).json()
    return next((p for p in body.get("problems", []) if "cannot write the read model" in p), None)


async def _completed(client, run_id: str):
    run = (await client.get(f"/v1/workflows/experiments/runs/{run_id}")).json()
    return run if run["lifecycle"]["status"] == "completed" else None


async def _healthy(client) -> bool:
    return (await client.get("/healthz")).status_code == 200
