"""SIGKILL the server between batches, restart it on the same data: nothing lost, nothing twice."""
from __future__ import annotations

import httpx
from retab import Retab

from events.codec import from_dict
from projections.domain.fold import apply
from tests.e2e.conftest import KEY, http
from tests.e2e.test_sdk_scenario import setup_experiment
from tests.server import ServerProcess
from tests.waiting import wait_for

DOCS = [{"handle_inputs": {"doc": {"type": "json", "data": {"n": i}}}} for i in range(8)]


def test_killing_the_server_between_batches_loses_nothing_and_counts_nothing_twice(server_env, tmp_path):
    data_dir = tmp_path / "server"
    args = [] if "RUNLEDGER_KAFKA_BOOTSTRAP" not in server_env else ["--with-projector"]
    server = ServerProcess(data_dir, server_env, args).start()
    try:
        sdk = Retab(api_key=KEY, base_url=server.url, max_retries=0)
        experiment = setup_experiment(server, sdk, documents=DOCS, n=3)
        run = sdk.workflows.experiments.runs.create(experiment_id=experiment.id)
        doc_ids = [r.document_id for r in sdk.workflows.experiments.results.list(run_id=run.id).data]
        passes = [{"type": "DocumentPassCompleted", "run_id": run.id,
                   "payload": {"document_id": d, "pass_index": i, "output": {"category": "invoice"}}}
                  for d in doc_ids for i in range(3)]
        batches = [passes[i:i + 5] for i in range(0, len(passes), 5)]
        for batch in batches[:3]:
            assert http(server).post("/v1/ledger/events", json={"events": batch}).status_code == 202
        server.kill()  # the projector may be anywhere in those batches

        server = ServerProcess(data_dir, server_env, args).start()  # same data, new port
        retried = http(server).post("/v1/ledger/events", json={"events": batches[2]}).status_code
        # batch 2 again (the client retried after the crash): 200, a duplicate answered at the door,
        # if the crashed server had projected it; else appended again (202), and the index counts
        # each event's second delivery on its one row
        assert retried in (200, 202), retried
        for batch in batches[3:]:
            assert http(server).post("/v1/ledger/events", json={"events": batch}).status_code == 202
        sdk = Retab(api_key=KEY, base_url=server.url, max_retries=0)
        done = wait_for(lambda: sdk.workflows.experiments.runs.get(run.id), lambda r: r.lifecycle.status == "completed")
        assert (done.completed_document_count, done.document_count, done.error_count) == (8, 8, 0)

        history = http(server).get(f"/v1/workflows/experiments/runs/{run.id}/events",
                                   params={"order": "asc", "limit": 1000}).json()["data"]
        accepted = [h for h in history if h["status"] == "accepted" and h["type"] == "DocumentPassCompleted"]
        assert len(accepted) == 24
        assert len({(h["payload"]["document_id"], h["payload"]["pass_index"]) for h in accepted}) == 24
        assert not [h for h in history if h["status"] == "rejected"]  # a repeat is counted, not indexed
        again = {(e["payload"]["document_id"], e["payload"]["pass_index"]) for e in batches[2]}
        counted = [h.get("deliveries") or 1 for h in accepted
                   if (h["payload"]["document_id"], h["payload"]["pass_index"]) in again]
        assert counted == [2 if retried == 202 else 1] * len(batches[2]), counted

        replayed = None
        for item in history:
            body = {"event_id": item["event_id"], "type": item["type"], "aggregate_id": run.id,
                    "occurred_at": item["occurred_at"], "producer": item["producer"], "org_id": "default",
                    "payload": item["payload"]}
            replayed = apply(replayed, from_dict(body)).state
        served = httpx.get(f"{server.url}/v1/workflows/experiments/runs/{run.id}", headers={"Api-Key": KEY}).json()
        assert served["score"] == replayed.score
        assert served["timing"]["completed_at"] == replayed.completed_at.isoformat()
    finally:
        server.stop()
