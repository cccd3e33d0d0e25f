"""Retab parity (issue 12): what the retab SDK and the Create Experiment Run page promise,
through the pinned SDK against a live server, on every configured backend."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from retab import Retab
from retab.exceptions import APIError
from retab.types.workflows.experiments import ExperimentByTargetMetricsResponse

from tests.e2e.conftest import KEY, http
from tests.server import ServerProcess
from tests.waiting import wait_for

DEMO_BLOCK = "services.worker.demo_block:demo_block"
INVOICES = [{"handle_inputs": {"invoice": {"type": "json", "data": {"invoice_number": f"INV-{i}", "pages": 2}}}}
            for i in range(3)]


def sdk_for(server) -> Retab:
    return Retab(api_key=KEY, base_url=server.url, max_retries=0)


def experiment(server, sdk: Retab, block_type: str = "extract", block_id: str = "totals", config=None,
               documents=INVOICES):
    response = http(server).put(f"/v1/workflows/wf_parity/blocks/{block_id}",
                                json={"type": block_type, "config": config or {}})
    assert response.status_code in (200, 201), response.text
    return sdk.workflows.experiments.create(workflow_id="wf_parity", block_id=block_id, documents=documents,
                                            n_consensus=3, name=block_id)


def ingest(server, events: list[dict]) -> None:
    response = http(server).post("/v1/ledger/events", json={"events": events})
    assert response.status_code == 202, response.text


def passes(run_id: str, doc_ids: list[str], outputs_per_doc: list[list[dict]]) -> list[dict]:
    return [{"type": "DocumentPassCompleted", "run_id": run_id,
             "payload": {"document_id": doc, "pass_index": i, "output": output}}
            for doc, outputs in zip(doc_ids, outputs_per_doc) for i, output in enumerate(outputs)]


def history(server, run_id: str) -> list[dict]:
    return http(server).get(f"/v1/workflows/experiments/runs/{run_id}/events", params={"order": "asc"}).json()["data"]


def documents_of(sdk: Retab, run_id: str) -> list[str]:
    return [r.document_id for r in sdk.workflows.experiments.results.list(run_id=run_id, order="asc").data]


@pytest.fixture
def worker_server(server_env, tmp_path):
    """`runledger serve --worker` with the built-in demo block."""
    args = ["--worker", DEMO_BLOCK]
    if "RUNLEDGER_KAFKA_BOOTSTRAP" in server_env:
        args.append("--with-projector")
    with ServerProcess(tmp_path / "server", server_env, args) as process:
        yield process


# 1. pending until taken ----------------------------------------------------------

def test_a_new_run_is_pending_until_something_takes_it(server):
    sdk = sdk_for(server)
    exp = experiment(server, sdk)
    run = sdk.workflows.experiments.runs.create(experiment_id=exp.id)
    assert run.lifecycle.status == "pending"
    assert [r.id for r in sdk.workflows.experiments.runs.list(status="pending").data] == [run.id]
    assert sdk.workflows.experiments.runs.list(status="queued").data == []
    assert {r.lifecycle.status for r in sdk.workflows.experiments.results.list(run_id=run.id).data} == {"pending"}
    assert [e["type"] for e in history(server, run.id)] == ["RunCreated"]

    ingest(server, [{"type": "RunQueued", "run_id": run.id, "payload": {}}])  # a producer takes it
    queued = wait_for(lambda: sdk.workflows.experiments.runs.get(run.id), lambda r: r.lifecycle.status == "queued")
    assert queued.timing.started_at is None
    assert sdk.workflows.experiments.runs.list(status="pending").data == []

    other = sdk.workflows.experiments.runs.create(experiment_id=exp.id)  # a pass on a pending run starts it
    ingest(server, passes(other.id, documents_of(sdk, other.id)[:1], [[{"total": 1}]]))
    started = wait_for(lambda: sdk.workflows.experiments.runs.get(other.id), lambda r: r.lifecycle.status == "running")
    assert started.timing.started_at is not None


# 2. trigger.type ----------------------------------------------------------------

def test_trigger_type_is_api_unless_the_caller_says_otherwise(server):
    sdk = sdk_for(server)
    exp = experiment(server, sdk)
    api = sdk.workflows.experiments.runs.create(experiment_id=exp.id)
    assert api.trigger.type == "api"
    scheduled = sdk.workflows.experiments.runs.create(experiment_id=exp.id, trigger_type="schedule")
    assert scheduled.trigger.type == "schedule"
    body = http(server).post("/v1/workflows/experiments/runs",
                             json={"experiment_id": exp.id, "trigger_type": "webhook"})
    assert body.status_code == 201 and body.json()["trigger"] == {"type": "webhook"}
    assert [r.id for r in sdk.workflows.experiments.runs.list(trigger_type="schedule").data] == [scheduled.id]
    with pytest.raises(APIError) as err:
        sdk.workflows.experiments.runs.create(experiment_id=exp.id, trigger_type="cron")
    assert err.value.status_code == 422

    def cli_run(*extra: str) -> dict:
        out = subprocess.run([sys.executable, "-m", "services.cli", "run", exp.id, "--api-url", server.url,
                              "--api-key", KEY, "--json", *extra], capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    assert cli_run()["trigger"] == {"type": "manual"}  # someone at a terminal
    assert cli_run("--trigger-type", "restart")["trigger"] == {"type": "restart"}


# 3. the page's example shape beside the schema's ----------------------------------

def test_a_run_carries_both_the_schemas_and_the_pages_shape(server):
    sdk = sdk_for(server)
    exp = experiment(server, sdk, block_type="classifier", block_id="kind")
    run = sdk.workflows.experiments.runs.create(experiment_id=exp.id)
    for raw in (http(server).get(f"/v1/workflows/experiments/runs/{run.id}").json(),
                http(server).get("/v1/workflows/experiments/runs", params={"experiment_id": exp.id}).json()["data"][0]):
        assert raw["workflow"] == {"workflow_id": run.workflow_id, "version_id": run.workflow_version_id}
        assert raw["block_kind"] == raw["block_type"] == run.block_type.value == "classifier"


# 4. by_target confusion for labels -----------------------------------------------

def test_by_target_fills_confusion_for_a_classifier_label(server):
    sdk = sdk_for(server)
    exp = experiment(server, sdk, block_type="classifier", block_id="kind")
    run = sdk.workflows.experiments.runs.create(experiment_id=exp.id)
    docs = documents_of(sdk, run.id)
    inv, rec = {"category": "invoice"}, {"category": "receipt"}
    ingest(server, passes(run.id, docs, [[inv, inv, rec], [rec, rec, inv], [inv, inv, inv]]))
    wait_for(lambda: sdk.workflows.experiments.runs.get(run.id), lambda r: r.lifecycle.status == "completed")

    invoice = sdk.workflows.experiments.metrics.get(run_id=run.id, view="by_target", target_path="invoice")
    assert isinstance(invoice, ExperimentByTargetMetricsResponse) and invoice.target == "invoice"
    # invoice questions (docs 0 and 2): 5 of 6 votes agree, 1 said receipt; receipt's (doc 1): 1 of 3 said invoice
    assert invoice.confusion.self == pytest.approx(5 / 6)
    assert invoice.confusion.flow_to == pytest.approx({"receipt": 1 / 6})
    assert invoice.confusion.flow_from == pytest.approx({"receipt": 1 / 3})
    assert [(d.id, d.value) for d in invoice.documents] == [(docs[0], "invoice"), (docs[2], "invoice")]
    assert [d.score for d in invoice.documents] == pytest.approx([2 / 3, 1.0])
    assert invoice.score == pytest.approx(5 / 6)

    receipt = sdk.workflows.experiments.metrics.get(run_id=run.id, view="by_target", target_path="receipt")
    assert receipt.confusion.self == pytest.approx(2 / 3) and receipt.confusion.flow_to == {"invoice": pytest.approx(1 / 3)}
    assert [d.id for d in receipt.documents] == [docs[1]]
    with pytest.raises(APIError) as err:
        sdk.workflows.experiments.metrics.get(run_id=run.id, view="by_target", target_path="memo")
    assert err.value.status_code == 404


def test_by_target_fills_confusion_for_a_split_subdocument(server):
    sdk = sdk_for(server)
    exp = experiment(server, sdk, block_type="split", block_id="pages", documents=INVOICES[:1])
    run = sdk.workflows.experiments.runs.create(experiment_id=exp.id)
    whole = {"splits": [{"name": "invoice", "pages": [1, 2, 3]}]}
    cut = {"splits": [{"name": "invoice", "pages": [1, 2]}, {"name": "appendix", "pages": [3]}]}
    ingest(server, passes(run.id, documents_of(sdk, run.id), [[cut, cut, whole]]))
    wait_for(lambda: sdk.workflows.experiments.runs.get(run.id), lambda r: r.lifecycle.status == "completed")

    appendix = sdk.workflows.experiments.metrics.get(run_id=run.id, view="by_target", target_path="appendix")
    assert appendix.confusion.self == pytest.approx(2 / 3)  # page 3: two passes say appendix, one invoice
    assert appendix.confusion.flow_to == pytest.approx({"invoice": 1 / 3})
    assert appendix.score == pytest.approx(2 / 3) and [d.value for d in appendix.documents] == ["appendix"]
    invoice = sdk.workflows.experiments.metrics.get(run_id=run.id, view="by_target", target_path="invoice")
    assert invoice.confusion.self == 1.0 and invoice.confusion.flow_from == pytest.approx({"appendix": 1 / 3})
    page = sdk.workflows.experiments.metrics.get(run_id=run.id, view="by_target", target_path="pages.3")
    assert [d.value for d in page.documents] == ["appendix"]  # paths still work beside labels


# 5. plan_token --------------------------------------------------------------------

def test_a_plan_token_pins_the_block_version_and_the_documents(server):
    sdk = sdk_for(server)
    exp = experiment(server, sdk)
    plan = http(server).post("/v1/workflows/experiments/runs/plan", json={"experiment_id": exp.id}).json()
    assert plan["document_count"] == 3 and plan["plan_token"].startswith("plan_")
    run = sdk.workflows.experiments.runs.create(experiment_id=exp.id, plan_token=plan["plan_token"])
    assert run.block_version_id == plan["block_version_id"]

    redefined = http(server).put("/v1/workflows/wf_parity/blocks/totals", json={"type": "extract",
                                                                               "config": {"numeric_tolerance": 0.1}})
    assert redefined.status_code == 201
    with pytest.raises(APIError) as err:
        sdk.workflows.experiments.runs.create(experiment_id=exp.id, plan_token=plan["plan_token"])
    assert err.value.status_code == 409 and err.value.code == "plan_changed"
    assert "block version or document set changed" in str(err.value)

    fresh = http(server).post("/v1/workflows/experiments/runs/plan", json={"experiment_id": exp.id}).json()
    sdk.workflows.experiments.update(exp.id, documents=INVOICES[:2])
    with pytest.raises(APIError) as err:
        sdk.workflows.experiments.runs.create(experiment_id=exp.id, plan_token=fresh["plan_token"])
    assert err.value.status_code == 409
    again = http(server).post("/v1/workflows/experiments/runs/plan", json={"experiment_id": exp.id}).json()
    assert sdk.workflows.experiments.runs.create(experiment_id=exp.id, plan_token=again["plan_token"]).id
    assert len(sdk.workflows.experiments.runs.list(experiment_id=exp.id).data) == 2  # refused ones made nothing


# 6. cancelling a finished run ----------------------------------------------------

def test_cancelling_a_completed_run_says_why(server):
    sdk = sdk_for(server)
    exp = experiment(server, sdk, documents=INVOICES[:1])
    run = sdk.workflows.experiments.runs.create(experiment_id=exp.id)
    ingest(server, passes(run.id, documents_of(sdk, run.id), [[{"total": 1}] * 3]))
    wait_for(lambda: sdk.workflows.experiments.runs.get(run.id), lambda r: r.lifecycle.status == "completed")
    with pytest.raises(APIError) as err:
        sdk.workflows.experiments.runs.cancel(run.id)
    assert err.value.status_code == 404  # what the SDK documents for a finished run
    detail = http(server).post(f"/v1/workflows/experiments/runs/{run.id}/cancel").json()["detail"]
    assert detail["message"] == "run is completed; only pending, queued or running runs can be cancelled"
    assert detail["details"]["status"] == "completed"
    assert sdk.workflows.experiments.runs.get(run.id).lifecycle.status == "completed"


# 7. serve --worker: create, then poll, and it finishes ----------------------------

def test_serve_with_a_worker_finishes_a_run_by_itself(worker_server):
    sdk = sdk_for(worker_server)
    exp = experiment(worker_server, sdk)
    run = sdk.workflows.experiments.runs.create(experiment_id=exp.id)
    done = wait_for(lambda: sdk.workflows.experiments.runs.get(run.id), lambda r: r.lifecycle.status == "completed")
    assert done.completed_document_count == done.total_document_count == 3 and done.score is not None
    events = history(worker_server, run.id)
    assert [e["type"] for e in events[:3]] == ["RunCreated", "RunQueued", "RunStarted"]
    assert all(e["status"] == "accepted" for e in events)
    assert sum(e["type"] == "DocumentPassCompleted" for e in events) == 9
    assert events[1]["producer"].startswith("worker:serve:")


# 8. time travel from the run's own events ----------------------------------------

def test_time_travel_with_a_position_and_a_time_from_the_run(server):
    sdk = sdk_for(server)
    exp = experiment(server, sdk, documents=INVOICES[:1])
    run = sdk.workflows.experiments.runs.create(experiment_id=exp.id)
    first, *rest = passes(run.id, documents_of(sdk, run.id), [[{"total": 1}] * 3])
    ingest(server, [first])
    wait_for(lambda: sdk.workflows.experiments.runs.get(run.id), lambda r: r.document_count == 1)
    ingest(server, rest)  # later than the first pass, whatever the clock's resolution
    wait_for(lambda: sdk.workflows.experiments.runs.get(run.id), lambda r: r.lifecycle.status == "completed")
    created, first_pass = history(server, run.id)[:2]
    url = f"/v1/workflows/experiments/runs/{run.id}"
    at_creation = http(server).get(url, params={"as_of": created["position"]}).json()
    assert at_creation["lifecycle"]["status"] == "pending" and at_creation["as_of_event_count"] == 1
    at_first_pass = http(server).get(url, params={"as_of": first_pass["occurred_at"]}).json()
    assert at_first_pass["lifecycle"]["status"] == "running" and at_first_pass["document_count"] == 1
