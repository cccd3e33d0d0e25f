"""What a client meets at the event contract's limits over HTTP: a 422 with a readable
code, never a 5xx (issue 8, findings 6-8); and a producer clock an hour ahead cannot
fool `as_of=<now>` (finding 7)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from retab import Retab

from tests.e2e.conftest import KEY, http
from tests.e2e.test_sdk_scenario import DOCS, setup_experiment
from tests.waiting import wait_for


@pytest.fixture
def started_run(server):
    sdk = Retab(api_key=KEY, base_url=server.url, max_retries=0)
    run = sdk.workflows.experiments.runs.create(experiment_id=setup_experiment(server, sdk, DOCS[:1]).id)
    doc = sdk.workflows.experiments.results.list(run_id=run.id).data[0].document_id
    return sdk, run.id, doc


def post_raw(server, body: str):
    return http(server).post("/v1/ledger/events", content=body.encode("utf-8", "surrogatepass"),
                             headers={"content-type": "application/json"})


def a_pass(run_id: str, doc: str, output: str = '{"category": "invoice"}', **fields: str) -> str:
    """One DocumentPassCompleted as JSON text, so non-JSON-able values can be spelled out."""
    payload = {"document_id": json.dumps(doc), "pass_index": "0", "output": output, **fields}
    body = ", ".join(f'"{k}": {v}' for k, v in payload.items())
    return f'{{"events": [{{"type": "DocumentPassCompleted", "run_id": "{run_id}", "payload": {{{body}}}}}]}}'


HOSTILE = {
    "nested 600 deep": {"output": '{"v": ' + "[" * 600 + "]" * 600 + "}"},
    "a lone surrogate": {"output": '{"v": "\\ud800"}'},
    "a key with NUL": {"output": '{"a\\u0000": 1, "a\\ufffd": 2}'},
    "an integer >= 2**64": {"output": '{"v": 18446744073709551616}'},
    "NaN": {"output": '{"v": NaN}'},
    "Infinity": {"output": '{"v": Infinity}'},
    "1e999": {"output": '{"v": 1e999}'},
    "pass_index 2**70": {"pass_index": str(2**70)},
    "attempt 2**70": {"attempt": str(2**70)},
    "a list too long": {"output": '{"items": [' + ",".join(["1"] * 2001) + "]}"},
}


def test_hostile_pass_fields_and_times_are_a_422_with_a_code(server, started_run):
    _, run_id, doc = started_run
    for case, fields in HOSTILE.items():
        response = post_raw(server, a_pass(run_id, doc, **fields))
        assert response.status_code == 422, (case, response.text)
        detail = response.json()["detail"]
        assert detail["code"] and detail["message"], case
    event = {"type": "RunStarted", "run_id": run_id, "occurred_at": "9999-12-31T23:59:59-14:00", "payload": {}}
    response = http(server).post("/v1/ledger/events", json={"events": [event]})
    assert response.status_code == 422 and "occurred_at" in json.dumps(response.json()["detail"])
    fine = http(server).post("/v1/ledger/events", content=a_pass(run_id, doc).encode(),
                             headers={"content-type": "application/json"})
    assert fine.status_code == 202  # the same request within bounds goes through


def test_a_pass_stamped_an_hour_ahead_neither_ends_in_the_future_nor_stops_as_of_now(server, started_run):
    sdk, run_id, doc = started_run
    ahead = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    passes = [{"type": "DocumentPassCompleted", "run_id": run_id, "occurred_at": ahead if i == 0 else None,
               "payload": {"document_id": doc, "pass_index": i, "output": {"category": "invoice"}}} for i in range(3)]
    assert http(server).post("/v1/ledger/events", json={"events": passes}).status_code == 202
    wait_for(lambda: sdk.workflows.experiments.runs.get(run_id), lambda r: r.lifecycle.status == "completed")
    now = datetime.now(timezone.utc)
    run = http(server).get(f"/v1/workflows/experiments/runs/{run_id}").json()
    assert datetime.fromisoformat(run["timing"]["completed_at"]) <= now
    as_of_now = http(server).get(f"/v1/workflows/experiments/runs/{run_id}", params={"as_of": now.isoformat()}).json()
    assert as_of_now["lifecycle"]["status"] == "completed"
    history = http(server).get(f"/v1/workflows/experiments/runs/{run_id}/events", params={"order": "asc"}).json()
    assert any("producer clock" in (item.get("reason") or "") for item in history["data"])
