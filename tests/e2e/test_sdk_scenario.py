"""The retab SDK, pointed at a live runledger, drives a whole run."""
from __future__ import annotations

from datetime import datetime

import pytest
from retab import Retab
from retab.exceptions import APIError

from tests.e2e.conftest import KEY, http
from tests.server import create_key
from tests.waiting import wait_for

DOCS = [{"handle_inputs": {"invoice": {"type": "json", "data": {"number": f"INV-{i}"}}}} for i in range(3)]


def setup_experiment(server, sdk: Retab, documents=DOCS, n: int = 3):
    with http(server) as client:
        block = client.put("/v1/workflows/wf_demo/blocks/classify",
                           json={"type": "classifier", "config": {"labels": ["invoice", "receipt"]}})
        assert block.status_code in (200, 201), block.text
    return sdk.workflows.experiments.create(workflow_id="wf_demo", block_id="classify", documents=documents,
                                            n_consensus=n, name="Invoices")


def test_a_run_from_creation_to_completion_through_the_sdk(server):
    sdk = Retab(api_key=KEY, base_url=server.url, max_retries=0)
    experiment = setup_experiment(server, sdk)
    assert experiment.document_count == 3 and experiment.n_consensus == 3 and experiment.status == "draft"

    run = sdk.workflows.experiments.runs.create(experiment_id=experiment.id)
    assert run.lifecycle.status == "pending" and run.total_document_count == 3
    assert run.block_execution_fingerprint and run.documents_fingerprint
    raw = http(server).get(f"/v1/workflows/experiments/runs/{run.id}").json()
    assert raw["definition_fingerprint"] == run.block_execution_fingerprint

    results = sdk.workflows.experiments.results.list(run_id=run.id, order="asc")
    doc_ids = [r.document_id for r in results.data]
    assert len(doc_ids) == 3 and all(r.lifecycle.status == "pending" for r in results.data)

    labels = ["invoice", "invoice", "receipt"]
    events = [{"type": "RunStarted", "run_id": run.id, "payload": {"worker": "test"}}]
    events += [{"type": "DocumentPassCompleted", "run_id": run.id,
                "payload": {"document_id": d, "pass_index": i, "output": {"category": labels[i]}}}
               for d in doc_ids for i in range(3)]
    duplicate = dict(events[1])
    out_of_range = {"type": "DocumentPassCompleted", "run_id": run.id,
                    "payload": {"document_id": doc_ids[0], "pass_index": 3, "output": {"category": "x"}}}
    with http(server) as client:
        first = client.post("/v1/ledger/events", json={"events": events[:4]})
        assert first.status_code == 202, first.text
        assert len(first.json()["positions"]) == 4
        rest = client.post("/v1/ledger/events", json={"events": [duplicate, out_of_range, *events[4:]]})
        assert rest.status_code == 202, rest.text

    done = wait_for(lambda: sdk.workflows.experiments.runs.get(run.id), lambda r: r.lifecycle.status == "completed")
    assert (done.total_document_count, done.completed_document_count, done.document_count, done.error_count) == (3, 3, 3, 0)
    timing = done.timing
    assert timing.created_at <= timing.started_at <= timing.completed_at
    assert timing.duration_ms == int((timing.completed_at - timing.started_at).total_seconds() * 1000)
    assert done.score is not None and 0 < done.score < 1

    results = sdk.workflows.experiments.results.list(run_id=run.id)
    assert {r.lifecycle.status for r in results.data} == {"completed"}
    assert all(r.attempt == 1 for r in results.data)
    one = sdk.workflows.experiments.results.get(results.data[0].id)
    assert one.document_id == results.data[0].document_id

    history = http(server).get(f"/v1/workflows/experiments/runs/{run.id}/events", params={"order": "asc", "limit": 100}).json()
    items = history["data"]
    assert [i["type"] for i in items[:2]] == ["RunCreated", "RunStarted"]  # no worker took it: no RunQueued
    rejected = [i for i in items if i["status"] == "rejected"]
    assert len(rejected) == 1 and "out of range" in rejected[0]["reason"]
    # The duplicate costs nothing (issue 17): answered at the door if its original was already
    # projected, else appended and counted on the original's row; never a row of its own.
    repeated = [i for i in items if i["event_id"] == rest.json()["events"][0]["event_id"]]
    assert len(repeated) == 1 and (rest.json()["events"][0]["duplicate"] or repeated[0]["deliveries"] == 2)
    assert len(items) == 1 + 1 + 9 + 1
    offsets = [i["offset"] for i in items]
    assert offsets == sorted(offsets)


def test_history_and_run_lists_paginate_with_cursors(server):
    sdk = Retab(api_key=KEY, base_url=server.url, max_retries=0)
    experiment = setup_experiment(server, sdk)
    run_ids = [sdk.workflows.experiments.runs.create(experiment_id=experiment.id).id for _ in range(5)]

    page = sdk.workflows.experiments.runs.list(experiment_id=experiment.id, limit=2)
    assert [r.id for r in page.data] == run_ids[::-1][:2]
    assert page.list_metadata.after  # an opaque cursor (sort key and id of the page's last run)
    walked = [r.id for r in page]  # auto-paging follows `after`
    assert walked == run_ids[::-1]
    asc = sdk.workflows.experiments.runs.list(experiment_id=experiment.id, order="asc", limit=10)
    assert [r.id for r in asc.data] == run_ids and asc.list_metadata.after is None

    back = sdk.workflows.experiments.runs.list(experiment_id=experiment.id, limit=2, before=run_ids[2])
    assert [r.id for r in back.data] == [run_ids[4], run_ids[3]]
    assert sdk.workflows.experiments.runs.list(experiment_id=experiment.id, status="pending").data
    assert not sdk.workflows.experiments.runs.list(experiment_id=experiment.id, exclude_status="pending").data
    window = sdk.workflows.experiments.runs.list(experiment_id=experiment.id,
                                                 from_date=datetime(2000, 1, 1).isoformat(), limit=10)
    assert len(window.data) == 5
    assert not sdk.workflows.experiments.runs.list(experiment_id=experiment.id,
                                                   to_date=datetime(2000, 1, 1).isoformat()).data


def test_cancel_is_idempotent_and_404_once_finished(server):
    sdk = Retab(api_key=KEY, base_url=server.url, max_retries=0)
    experiment = setup_experiment(server, sdk, documents=DOCS[:1])
    run = sdk.workflows.experiments.runs.create(experiment_id=experiment.id)
    cancelled = sdk.workflows.experiments.runs.cancel(run.id)
    assert cancelled.lifecycle.status == "cancelled"
    again = sdk.workflows.experiments.runs.cancel(run.id)
    assert again.lifecycle.status == "cancelled"
    results = sdk.workflows.experiments.results.list(run_id=run.id)
    assert {r.lifecycle.status for r in results.data} == {"cancelled"}

    finished = sdk.workflows.experiments.runs.create(experiment_id=experiment.id)
    doc = sdk.workflows.experiments.results.list(run_id=finished.id).data[0].document_id
    passes = [{"type": "DocumentPassCompleted", "run_id": finished.id,
               "payload": {"document_id": doc, "pass_index": i, "output": {"category": "invoice"}}} for i in range(3)]
    assert http(server).post("/v1/ledger/events", json={"events": passes}).status_code == 202
    wait_for(lambda: sdk.workflows.experiments.runs.get(finished.id), lambda r: r.lifecycle.status == "completed")
    with pytest.raises(APIError) as err:
        sdk.workflows.experiments.runs.cancel(finished.id)
    assert err.value.status_code == 404
    late = http(server).post("/v1/ledger/events", json={"events": [
        {"type": "DocumentPassCompleted", "run_id": run.id,
         "payload": {"document_id": doc, "pass_index": 0, "output": {"category": "invoice"}}}]})
    assert late.status_code == 202
    history = http(server).get(f"/v1/workflows/experiments/runs/{run.id}/events", params={"order": "desc", "limit": 1}).json()
    wait_for(lambda: http(server).get(f"/v1/workflows/experiments/runs/{run.id}/events",
                                      params={"order": "desc", "limit": 1}).json()["data"][0],
             lambda item: item["type"] == "DocumentPassCompleted")
    latest = http(server).get(f"/v1/workflows/experiments/runs/{run.id}/events", params={"order": "desc", "limit": 1}).json()
    assert latest["data"][0]["status"] == "rejected" and latest["data"][0]["reason"] == "run is cancelled"
    assert history["data"]


def test_keys_are_required_and_organisations_are_isolated(server):
    sdk = Retab(api_key=KEY, base_url=server.url, max_retries=0)
    experiment = setup_experiment(server, sdk)
    run = sdk.workflows.experiments.runs.create(experiment_id=experiment.id)

    for headers in ({}, {"Api-Key": "wrong"}, {"Authorization": "Bearer wrong"}):
        response = http(server, key="").get(f"/v1/workflows/experiments/runs/{run.id}", headers=headers)
        assert response.status_code == 401
        assert response.json()["detail"]["code"] == "unauthorized"
    with pytest.raises(APIError) as err:
        Retab(api_key="nope", base_url=server.url, max_retries=0).workflows.experiments.get(experiment.id)
    assert err.value.status_code == 401

    other = Retab(api_key=create_key(server, "other-org"), base_url=server.url, max_retries=0)
    for call in (lambda: other.workflows.experiments.get(experiment.id),
                 lambda: other.workflows.experiments.runs.get(run.id),
                 lambda: other.workflows.experiments.runs.cancel(run.id),
                 lambda: other.workflows.experiments.runs.create(experiment_id=experiment.id)):
        with pytest.raises(APIError) as err:
            call()
        assert err.value.status_code == 404
    assert other.workflows.experiments.runs.list().data == []
    assert other.workflows.experiments.list(workflow_id="wf_demo").data == []
    foreign = http(server, key=other.api_key).post("/v1/ledger/events", json={"events": [
        {"type": "RunStarted", "run_id": run.id, "payload": {}}]})
    assert foreign.status_code == 404
