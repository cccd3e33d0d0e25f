"""The audit and replay CLI against a live server's data: history, tail, status, dead
letters, verify and repair, and the HTTP verify (owning tenant or admin only)."""
from __future__ import annotations

import asyncio
import json
import time

from retab import Retab
from sqlalchemy import select, update

from events.log import Message
from projections.runtime import versions
from projections.store.tables import runs
from services.bootstrap import build_log
from services.settings import Settings
from tests.e2e.conftest import KEY, http
from tests.server import create_key
from tests.e2e.test_rebuild import cli
from tests.e2e.test_sdk_scenario import setup_experiment
from tests.waiting import wait_for


def _completed_run(server, sdk: Retab) -> str:
    experiment = setup_experiment(server, sdk)
    run = sdk.workflows.experiments.runs.create(experiment_id=experiment.id)
    docs = [r.document_id for r in sdk.workflows.experiments.results.list(run_id=run.id).data]
    events = [{"type": "DocumentPassCompleted", "run_id": run.id,
               "payload": {"document_id": d, "pass_index": i, "output": {"category": "invoice"}}}
              for d in docs for i in range(3)]
    events.append({"type": "DocumentPassFailed", "run_id": run.id, "payload": {  # after completion: rejected
        "document_id": docs[0], "pass_index": 0, "error": {"message": "late"}, "final": True}})
    with http(server) as client:
        assert client.post("/v1/ledger/events", json={"events": events}).status_code == 202
    wait_for(lambda: sdk.workflows.experiments.runs.get(run.id), lambda r: r.lifecycle.status == "completed")
    return run.id


def _json(server, *args: str):
    done = cli(server, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_history_tail_and_status(server):
    sdk = Retab(api_key=KEY, base_url=server.url, max_retries=0)
    run_id = _completed_run(server, sdk)

    steps = _json(server, "history", run_id)
    assert steps[0]["type"] == "RunCreated" and steps[0]["accepted"] is True
    assert steps[0]["before"] is None and steps[0]["after"]["status"] == "pending"
    assert steps[-1]["accepted"] is False and "completed" in steps[-1]["reason"]
    assert steps[-1]["before"] == steps[-1]["after"]
    assert steps[-2]["after"]["completed_document_count"] == 3 and steps[-2]["after"]["status"] == "completed"

    tailed = cli(server, "tail", "--run", run_id, "--from-start", "--limit", str(len(steps)), "--json")
    assert tailed.returncode == 0, tailed.stderr
    lines = [json.loads(line) for line in tailed.stdout.splitlines()]
    assert [(t["position"], t["type"]) for t in lines] == [(s["position"], s["type"]) for s in steps]

    status = _json(server, "status")
    http_status = http(server, create_key(server, "ops", admin=True)).get("/v1/ledger/projections").json()
    figures = lambda s: [(p["partition"], p["checkpoint"], p["end_offset"]) for p in s["projections"][0]["partitions"]]  # noqa: E731
    assert figures(status) == figures(http_status)
    assert all(p["lag"] == 0 and p["lag_seconds"] == 0 for p in status["projections"][0]["partitions"])


def test_dead_letters_are_listed_shown_and_retried(server):
    asyncio.run(_append_raw(server, b"\xff not an event"))
    letters = wait_for(lambda: _json(server, "dead-letters", "list"), lambda rows: len(rows) == 1)
    assert "not JSON" in letters[0]["reason"]
    shown = _json(server, "dead-letters", "show", letters[0]["position"])
    assert shown[0]["position"] == letters[0]["position"] and "not an event" in shown[0]["value"]
    retried = _json(server, "dead-letters", "retry")
    assert retried[0]["outcome"].startswith("still undecodable")
    assert len(_json(server, "dead-letters", "list")) == 1


def verified(server, key: str, run_id: str) -> dict:
    """`GET .../verify`'s result: its answer, or the job's when the worker took longer
    than the inline wait (202, a busy machine) and the job is followed to its end."""
    with http(server, key) as client:
        answer = client.get(f"/v1/ledger/runs/{run_id}/verify")
        deadline = time.monotonic() + 180
        while answer.status_code == 202 and time.monotonic() < deadline:
            job = client.get(answer.headers["location"]).json()
            if job["status"] not in ("queued", "running"):
                return job["result"]
            time.sleep(0.5)
        assert answer.status_code == 200, answer.text
        return answer.json()


def test_verify_finds_a_corrupted_counter_and_repair_fixes_it(server):
    sdk = Retab(api_key=KEY, base_url=server.url, max_retries=0)
    run_id = _completed_run(server, sdk)
    assert cli(server, "verify").returncode == 0
    asyncio.run(_corrupt(server, run_id))

    found = cli(server, "verify", "--json")
    assert found.returncode == 1
    differing = json.loads(found.stdout)["differing"]
    assert [d["run_id"] for d in differing] == [run_id]
    assert differing[0]["differences"][0]["field"] == "state.error_count"

    other = create_key(server, "org_other")
    assert http(server, other).get(f"/v1/ledger/runs/{run_id}/verify").status_code == 404
    mine = verified(server, KEY, run_id)
    assert mine["ok"] is False and mine["differences"][0]["field"] == "state.error_count"

    repaired = _json(server, "rebuild", "--run", run_id)
    assert repaired["repaired"] is True and repaired["differences"][0]["field"] == "state.error_count"
    assert verified(server, create_key(server, "ops", admin=True), run_id)["ok"] is True
    assert cli(server, "verify").returncode == 0


async def _append_raw(server, value: bytes) -> None:
    log = build_log(Settings.from_env(server.env).with_(data_dir=server.data_dir))
    await log.start()
    try:
        await log.append([Message("run_poison", value)])
    finally:
        await log.close()


async def _corrupt(server, run_id: str) -> None:
    """A counter changed behind the projector's back."""
    settings = Settings.from_env(server.env).with_(data_dir=server.data_dir)
    engine = versions.open_engine(versions.locate(settings.read_model_url, 1))
    try:
        async with engine.begin() as conn:
            state = await conn.scalar(select(runs.c.state).where(runs.c.run_id == run_id))
            await conn.execute(update(runs).where(runs.c.run_id == run_id)
                               .values(state={**state, "error_count": state["error_count"] + 2}))
    finally:
        await engine.dispose()
