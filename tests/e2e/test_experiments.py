"""Experiments and blocks through the SDK: create, duplicate, update, delete, versions."""
from __future__ import annotations

import pytest
from retab import Retab
from retab.exceptions import APIError

from tests.e2e.conftest import KEY, http
from tests.e2e.test_sdk_scenario import DOCS, setup_experiment
from tests.waiting import wait_for


def test_blocks_are_versioned_by_definition(server):
    with http(server) as client:
        first = client.put("/v1/workflows/wf/blocks/b", json={"type": "extract", "config": {}})
        same = client.put("/v1/workflows/wf/blocks/b", json={"type": "extract", "config": {}})
        changed = client.put("/v1/workflows/wf/blocks/b", json={"type": "extract", "config": {"numeric_tolerance": 0.05}})
        bad = client.put("/v1/workflows/wf/blocks/b", json={"type": "extract", "config": {"numeric_tolerance": 3}})
        unknown_type = client.put("/v1/workflows/wf/blocks/b", json={"type": "ocr", "config": {}})
    assert (first.status_code, same.status_code, changed.status_code) == (201, 200, 201)
    assert first.json()["version"] == same.json()["version"] == 1 and changed.json()["version"] == 2
    assert first.json()["fingerprint"] == same.json()["fingerprint"] != changed.json()["fingerprint"]
    assert bad.status_code == 422 and "numeric_tolerance" in bad.json()["detail"]["message"]
    assert unknown_type.status_code == 422


def test_an_experiment_on_an_unknown_block_is_a_clear_404(server):
    sdk = Retab(api_key=KEY, base_url=server.url, max_retries=0)
    with pytest.raises(APIError) as err:
        sdk.workflows.experiments.create(workflow_id="wf", block_id="nope", documents=DOCS)
    assert err.value.status_code == 404 and err.value.code == "block_not_found"
    assert "PUT /v1/workflows/wf/blocks/nope" in err.value.message


def test_create_get_list_update_duplicate_delete(server):
    sdk = Retab(api_key=KEY, base_url=server.url, max_retries=0)
    experiments = sdk.workflows.experiments
    exp = setup_experiment(server, sdk)
    assert experiments.get(exp.id).name == "Invoices"
    assert [e.id for e in experiments.list(workflow_id="wf_demo").data] == [exp.id]

    updated = experiments.update(exp.id, name="Renamed", n_consensus=5, documents=DOCS[:2])
    assert (updated.name, updated.n_consensus, updated.document_count) == ("Renamed", 5, 2)
    assert updated.updated_at > updated.created_at

    copy = experiments.create(workflow_id="wf_demo", source_experiment_id=exp.id)
    assert copy.id != exp.id and copy.name == "Renamed (Copy)"
    assert (copy.n_consensus, copy.document_count, copy.block_id) == (5, 2, exp.block_id)
    with pytest.raises(APIError) as err:
        experiments.create(workflow_id="wf_demo", source_experiment_id=exp.id, name="x")
    assert err.value.status_code == 422

    run = experiments.runs.create(experiment_id=copy.id)
    with pytest.raises(APIError) as err:
        experiments.delete(copy.id)
    assert err.value.status_code == 409 and err.value.code == "run_in_progress"
    experiments.runs.cancel(run.id)
    experiments.delete(copy.id)
    with pytest.raises(APIError) as err:
        experiments.get(copy.id)
    assert err.value.status_code == 404
    with pytest.raises(APIError) as err:
        experiments.runs.get(run.id)
    assert err.value.status_code == 404
    assert [e.id for e in experiments.list(workflow_id="wf_demo").data] == [exp.id]


def test_a_run_freezes_its_documents_and_definition(server):
    sdk = Retab(api_key=KEY, base_url=server.url, max_retries=0)
    experiments = sdk.workflows.experiments
    exp = setup_experiment(server, sdk)
    run = experiments.runs.create(experiment_id=exp.id)
    experiments.update(exp.id, documents=DOCS[:1], n_consensus=7)
    again = experiments.runs.get(run.id)
    assert again.total_document_count == 3 and again.n_consensus == 3
    assert again.documents_fingerprint == run.documents_fingerprint
    second = experiments.runs.create(experiment_id=exp.id, workflow_id="wf_demo")
    assert second.total_document_count == 1 and second.n_consensus == 7 and second.parent_run_id == run.id
    assert second.documents_fingerprint != run.documents_fingerprint
    with pytest.raises(APIError) as err:
        experiments.runs.create(experiment_id=exp.id, workflow_id="another_workflow")
    assert err.value.status_code == 404
    status = wait_for(lambda: experiments.get(exp.id), lambda e: e.status == "processing")
    assert status.last_run_id == second.id


def test_ids_from_outside_are_bounded_and_printable(server):
    with http(server) as client:
        long_id = client.put(f"/v1/workflows/{'w' * 300}/blocks/b", json={"type": "extract", "config": {}})
        control = client.put("/v1/workflows/wf/blocks/b%01x", json={"type": "extract", "config": {}})
    assert long_id.status_code == 422 and "at most 256" in long_id.json()["detail"]["message"]
    assert control.status_code == 422 and "control characters" in control.json()["detail"]["message"]
