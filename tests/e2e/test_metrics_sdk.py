"""Consensus metrics read back through the retab SDK: every view, prior runs, and both non-answers."""
from __future__ import annotations

import pytest
from retab import Retab
from retab.exceptions import APIError
from retab.types.workflows.experiments import (
    ExperimentByDocumentMetricsResponse, ExperimentByTargetMetricsResponse, ExperimentConfusionSummaryAggregate,
    ExperimentMetricsMissingError, ExperimentMetricsStaleError, ExperimentSummaryMetricsResponse,
    ExperimentVotesMetricsResponse,
)

from tests.e2e.conftest import KEY, http
from tests.waiting import wait_for

INVOICES = [{"handle_inputs": {"invoice": {"type": "json", "data": {"n": i}}}} for i in range(2)]


def define(server, block_type: str, block_id: str) -> None:
    response = http(server).put(f"/v1/workflows/wf_m/blocks/{block_id}", json={"type": block_type, "config": {}})
    assert response.status_code in (200, 201), response.text


def run_with_outputs(server, sdk: Retab, experiment_id: str, outputs_per_doc: list[list[dict]]):
    run = sdk.workflows.experiments.runs.create(experiment_id=experiment_id)
    docs = [r.document_id for r in sdk.workflows.experiments.results.list(run_id=run.id, order="asc").data]
    events = [{"type": "DocumentPassCompleted", "run_id": run.id,
               "payload": {"document_id": doc, "pass_index": i, "output": output}}
              for doc, outputs in zip(docs, outputs_per_doc) for i, output in enumerate(outputs)]
    assert http(server).post("/v1/ledger/events", json={"events": events}).status_code == 202
    wait_for(lambda: sdk.workflows.experiments.runs.get(run.id), lambda r: r.lifecycle.status == "completed")
    return run.id, docs


def test_every_metrics_view_of_an_extract_run(server):
    sdk = Retab(api_key=KEY, base_url=server.url, max_retries=0)
    define(server, "extract", "fields")
    exp = sdk.workflows.experiments.create(workflow_id="wf_m", block_id="fields", documents=INVOICES,
                                           n_consensus=3, name="fields")
    agree = {"total": 100, "vendor": "ACME"}
    first_id, docs = run_with_outputs(server, sdk, exp.id, [
        [agree, agree, {"total": 100, "vendor": "Globex"}],  # vendor 2/3, total 3/3
        [agree, agree, agree],
    ])

    summary = sdk.workflows.experiments.metrics.get(run_id=first_id)
    assert isinstance(summary, ExperimentSummaryMetricsResponse)
    assert summary.aggregate.likelihoods == pytest.approx({"total": 1.0, "vendor": (2 / 3 + 1) / 2})
    assert summary.score == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2)
    assert summary.scored_document_count == summary.total_document_count == 2
    assert summary.prior_score is None and summary.prior_run_id is None
    assert {d.id: d.score for d in summary.documents} == pytest.approx({docs[0]: 5 / 6, docs[1]: 1.0})

    by_doc = sdk.workflows.experiments.metrics.get(run_id=first_id, view="by_document", document_id=docs[0])
    assert isinstance(by_doc, ExperimentByDocumentMetricsResponse)
    assert {t.path: t.value for t in by_doc.targets} == {"total": 100, "vendor": "ACME"}
    assert {t.path: t.score for t in by_doc.targets} == pytest.approx({"total": 1.0, "vendor": 2 / 3})

    by_target = sdk.workflows.experiments.metrics.get(run_id=first_id, view="by_target", target_path="vendor")
    assert isinstance(by_target, ExperimentByTargetMetricsResponse)
    assert by_target.score == pytest.approx(5 / 6)
    assert [d.id for d in by_target.documents] == docs

    votes = sdk.workflows.experiments.metrics.get(run_id=first_id, view="votes", document_id=docs[0],
                                                  target_path="vendor")
    assert isinstance(votes, ExperimentVotesMetricsResponse)
    [row] = votes.rows
    assert row.consensus == "ACME" and row.votes == ["ACME", "ACME", "Globex"]
    assert row.present_voter_count == row.total_voter_count == 3

    result = sdk.workflows.experiments.results.list(run_id=first_id, order="asc").data[0]
    assert result.handle_outputs["output"].data == {"total": 100, "vendor": "ACME"}

    second_id, _ = run_with_outputs(server, sdk, exp.id, [[agree] * 3, [agree] * 3])
    second = sdk.workflows.experiments.metrics.get(run_id=second_id)
    assert second.score == 1.0 and second.prior_run_id == first_id
    assert second.prior_score == pytest.approx(summary.score)
    assert {d.id: d.prior_score for d in second.documents} == pytest.approx({docs[0]: 5 / 6, docs[1]: 1.0})
    no_prior = sdk.workflows.experiments.metrics.get(run_id=second_id, include_prior=False)
    assert no_prior.prior_score is None
    run = sdk.workflows.experiments.runs.get(second_id)
    assert run.score == 1.0 and run.metrics_validity_fingerprint and run.metrics_validity_fingerprint_version
    assert sdk.workflows.experiments.get(exp.id).score == 1.0

    sdk.workflows.experiments.update(exp.id, n_consensus=5)
    stale = sdk.workflows.experiments.metrics.get(run_id=second_id)
    assert isinstance(stale, ExperimentMetricsStaleError)
    assert stale.stale_reasons == ["block_changed"] and stale.last_run.run_id == second_id
    assert sdk.workflows.experiments.get(exp.id).is_stale is True
    forced = sdk.workflows.experiments.metrics.get(run_id=second_id, allow_stale=True)
    assert isinstance(forced, ExperimentSummaryMetricsResponse)

    with pytest.raises(APIError) as err:
        sdk.workflows.experiments.metrics.get(run_id=second_id, view="votes", document_id=docs[0], allow_stale=True)
    assert err.value.status_code == 422 and err.value.code == "invalid_request"
    with pytest.raises(APIError) as err:
        sdk.workflows.experiments.metrics.get(run_id="run_missing")
    assert err.value.status_code == 404 and err.value.code == "run_not_found"


def test_no_metrics_until_something_is_scored(server):
    sdk = Retab(api_key=KEY, base_url=server.url, max_retries=0)
    define(server, "extract", "empty")
    exp = sdk.workflows.experiments.create(workflow_id="wf_m", block_id="empty", documents=INVOICES, n_consensus=3)
    missing = sdk.workflows.experiments.metrics.get(run_id=None, experiment_id=exp.id)
    assert isinstance(missing, ExperimentMetricsMissingError) and "no runs" in missing.message
    run = sdk.workflows.experiments.runs.create(experiment_id=exp.id)
    pending = sdk.workflows.experiments.metrics.get(run_id=run.id)
    assert isinstance(pending, ExperimentMetricsMissingError) and run.id in pending.message


def test_classifier_confusion_in_summary_and_by_target(server):
    sdk = Retab(api_key=KEY, base_url=server.url, max_retries=0)
    define(server, "classifier", "labels")
    exp = sdk.workflows.experiments.create(workflow_id="wf_m", block_id="labels", documents=INVOICES, n_consensus=3)
    inv, rec = {"category": "invoice"}, {"category": "receipt"}
    run_id, docs = run_with_outputs(server, sdk, exp.id, [[inv, inv, rec], [rec, rec, rec]])
    summary = sdk.workflows.experiments.metrics.get(run_id=run_id)
    assert isinstance(summary.aggregate, ExperimentConfusionSummaryAggregate)
    assert summary.aggregate.diag == pytest.approx({"invoice": 2 / 3, "receipt": 1.0})
    assert [(f.source, f.target) for f in summary.aggregate.flows] == [("invoice", "receipt")]
    assert summary.aggregate.flows[0].score == pytest.approx(1 / 3)
    sliced = sdk.workflows.experiments.metrics.get(run_id=run_id, view="by_target", target_path="category")
    assert [d.value for d in sliced.documents] == ["invoice", "receipt"]
