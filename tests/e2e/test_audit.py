"""Auditors: a run as of a position or a moment, projection status, health and metrics."""
from __future__ import annotations

import os
import re
from datetime import datetime, timedelta

from retab import Retab

from tests.e2e.conftest import KEY, http
from tests.server import create_key
from tests.e2e.test_sdk_scenario import DOCS, setup_experiment
from tests.server import ServerProcess
from tests.waiting import wait_for


def test_a_run_as_of_a_position_and_as_of_a_time(server):
    sdk = Retab(api_key=KEY, base_url=server.url, max_retries=0)
    run = sdk.workflows.experiments.runs.create(experiment_id=setup_experiment(server, sdk, DOCS[:1]).id)
    doc = sdk.workflows.experiments.results.list(run_id=run.id).data[0].document_id
    # stamps between the run's creation and now: the log's append time bounds them (projections/domain/clock.py)
    created = datetime.fromisoformat(http(server).get(f"/v1/workflows/experiments/runs/{run.id}").json()["timing"]["created_at"])
    at = [created + timedelta(microseconds=i + 1) for i in range(3)]
    passes = [{"type": "DocumentPassCompleted", "run_id": run.id, "occurred_at": at[i].isoformat(),
               "payload": {"document_id": doc, "pass_index": i, "output": {"category": "invoice"}}} for i in range(3)]
    assert http(server).post("/v1/ledger/events", json={"events": passes}).status_code == 202
    wait_for(lambda: sdk.workflows.experiments.runs.get(run.id), lambda r: r.lifecycle.status == "completed")
    history = http(server).get(f"/v1/workflows/experiments/runs/{run.id}/events", params={"order": "asc"}).json()["data"]
    after_first_pass = history[1]["position"]  # RunCreated, then the first pass (no worker: no RunQueued)

    then = http(server).get(f"/v1/workflows/experiments/runs/{run.id}", params={"as_of": after_first_pass}).json()
    assert then["lifecycle"]["status"] == "running" and then["document_count"] == 1
    assert then["as_of_event_count"] == 2
    at_time = http(server).get(f"/v1/workflows/experiments/runs/{run.id}", params={"as_of": at[1].isoformat()}).json()
    assert at_time["lifecycle"]["status"] == "running"
    final = http(server).get(f"/v1/workflows/experiments/runs/{run.id}", params={"as_of": history[-1]["position"]}).json()
    now = http(server).get(f"/v1/workflows/experiments/runs/{run.id}").json()
    assert {k: v for k, v in final.items() if not k.startswith("as_of")} == now
    before = http(server).get(f"/v1/workflows/experiments/runs/{run.id}", params={"as_of": "2000-01-01T00:00:00Z"})
    assert before.status_code == 404
    assert http(server).get(f"/v1/workflows/experiments/runs/{run.id}", params={"as_of": "yesterday"}).status_code == 422
    elsewhere = f"{(history[0]['partition'] + 1) % 6}:0"
    wrong = http(server).get(f"/v1/workflows/experiments/runs/{run.id}", params={"as_of": elsewhere})
    assert wrong.status_code == 422 and "partition" in wrong.json()["detail"]["message"]


def test_projection_status_health_and_prometheus(server):
    sdk = Retab(api_key=KEY, base_url=server.url, max_retries=0)
    setup_experiment(server, sdk, DOCS[:1])
    status = http(server, create_key(server, "ops", admin=True)).get("/v1/ledger/projections").json()
    main = status["projections"][0]
    assert main["name"] == "main" and main["lag"] == 0 and main["dead_letters"] == 0
    assert sum(p["end_offset"] for p in main["partitions"]) >= 2
    assert http(server).get("/healthz").json()["status"] == "ok"
    text = http(server).get("/metrics").text
    assert re.search(r'runledger_projection_lag\{partition="0",projection="main"\} 0\.0$', text, re.M)
    assert http(server, key="").get("/v1/ledger/projections").status_code == 401
    assert http(server).get("/v1/ledger/projections").status_code == 403  # a tenant key: whole-ledger figures are not for it


def test_first_start_prints_a_key_once_and_it_works(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RUNLEDGER_BOOTSTRAP_KEY"}
    with ServerProcess(tmp_path / "fresh", env) as server:
        printed = re.findall(r"^\s+(rl_\S+)$", server.log_path.read_text(), re.M)
        assert len(printed) == 1
        assert http(server, key=printed[0]).get("/v1/workflows/experiments/runs").status_code == 200
    with ServerProcess(tmp_path / "fresh", env) as server:  # second start: no new key
        assert re.findall(r"^\s+(rl_\S+)$", server.log_path.read_text(), re.M) == []
