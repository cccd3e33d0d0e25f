"""Following one pass by its trace id: a producer's W3C traceparent travels in the event
(over HTTP as the `traceparent` header, over Kafka or the embedded log inside the record)
to the run's history, the audit CLI and the projector's JSON log line; with OpenTelemetry's
SDK, the projector's batch span links to the producer's span."""
from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from events.envelope import trace_id
from events.producer import Producer
from events.trace import use_trace
from services.bootstrap import build_log
from tests.console_session import signed_in
from tests.e2e.conftest import KEY, http
from tests.e2e.test_rebuild import cli
from tests.e2e.test_worker import InProcess, define_block, history, start_run, wait_until_finished, worker_settings
from tests.server import ServerProcess
from tests.waiting import wait_for

OVER_HTTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
OVER_LOG = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
OWN = "00-5d0c1e0ba1ab4b3c9f6a8e2d7c4b1a09-1a2b3c4d5e6f7a8b-01"


@pytest.fixture
def server(server_env, tmp_path):
    """The e2e server (embedded, embedded+postgres, kafka+postgres) with JSON logs."""
    args = [] if "RUNLEDGER_KAFKA_BOOTSTRAP" not in server_env else ["--with-projector"]
    with ServerProcess(tmp_path / "server", {**server_env, "RUNLEDGER_LOG_FORMAT": "json"}, args) as process:
        yield process


def batch_lines(server) -> list[dict]:
    lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if line["logger"] == "runledger.projector.batch"]


def traced_in_batches(server, trace: str) -> list[dict]:
    return wait_for(lambda: batch_lines(server), lambda found: any(trace_id(trace) in b["trace_ids"] for b in found))


def items_of(server, run_id: str, count: int) -> list[dict]:
    return wait_for(lambda: history(server, run_id), lambda items: len(items) >= count)


async def test_a_pass_sent_over_http_is_followed_by_its_trace_id(server):
    define_block(server)
    run_id, docs = start_run(server, batch=0, documents=2)
    async with Producer.over_http(server.url, KEY, producer="traced") as producer:
        with use_trace(OVER_HTTP):  # one trace for the request: sent as the traceparent header
            await producer.pass_completed(run_id, docs[0], 0, {"total": 1})
        await producer.emit_many([("DocumentPassCompleted", run_id,
                                   {"document_id": docs[1], "pass_index": 0, "output": {"total": 2}})])
        mixed = [producer.build("DocumentPassCompleted", run_id, {"document_id": doc, "pass_index": 1, "output": {}},
                                trace=trace) for doc, trace in ((docs[0], OWN), (docs[1], OVER_LOG))]
        await producer.send(mixed)  # one request, two traces: each event names its own
    items = items_of(server, run_id, 5)
    passes = {(i["payload"]["document_id"], i["payload"]["pass_index"]): i for i in items
              if i["type"] == "DocumentPassCompleted"}
    assert (passes[docs[0], 0]["trace_id"], passes[docs[0], 0]["traceparent"]) == (trace_id(OVER_HTTP), OVER_HTTP)
    assert passes[docs[1], 0]["trace_id"] is None and items[0]["trace_id"] is None  # untraced stays untraced
    assert (passes[docs[0], 1]["traceparent"], passes[docs[1], 1]["traceparent"]) == (OWN, OVER_LOG)
    [line] = [b for b in traced_in_batches(server, OVER_HTTP) if trace_id(OVER_HTTP) in b["trace_ids"]]
    assert line["first_offset"] <= int(passes[docs[0], 0]["offset"]) <= line["last_offset"]
    # where the batch's time went, step by step, within its whole
    assert set(line["steps"]) == {"decode", "load", "fold", "write"}
    assert all(ms >= 0 for ms in line["steps"].values()) and sum(line["steps"].values()) <= line["ms"] + 0.5
    assert 0 <= line["gc_ms"] <= line["ms"] + 0.5  # the collector's pauses within it (gc_policy.py)


def test_the_request_header_stamps_events_without_their_own_and_a_bad_one_is_ignored(server):
    define_block(server)
    run_id, docs = start_run(server, batch=0, documents=3)
    event = {"type": "DocumentPassCompleted", "run_id": run_id}
    with http(server) as client:
        answer = client.post("/v1/ledger/events", headers={"traceparent": OVER_HTTP}, json={"events": [
            {**event, "payload": {"document_id": docs[0], "pass_index": 0, "output": {}}},
            {**event, "payload": {"document_id": docs[1], "pass_index": 0, "output": {}}, "trace": OWN}]})
        assert answer.status_code == 202, answer.text
        ignored = client.post("/v1/ledger/events", headers={"traceparent": OVER_HTTP.upper()}, json={"events": [
            {**event, "payload": {"document_id": docs[2], "pass_index": 0, "output": {}}}]})
        assert ignored.status_code == 202, ignored.text
        refused = client.post("/v1/ledger/events", json={"events": [
            {**event, "payload": {"document_id": docs[2], "pass_index": 0, "output": {}}, "trace": "00-bad"}]})
    assert refused.status_code == 422
    assert refused.json()["detail"]["code"] and "trace" in refused.json()["detail"]["message"]
    items = items_of(server, run_id, 4)
    assert len(items) == 4  # the refused event is nowhere
    traces = {i["payload"]["document_id"]: i["trace_id"] for i in items if i["type"] == "DocumentPassCompleted"}
    assert traces == {docs[0]: trace_id(OVER_HTTP), docs[1]: trace_id(OWN), docs[2]: None}
    with signed_in(server.url, KEY) as console:
        timeline = console.get(f"/console/runs/{run_id}/timeline")
    assert timeline.status_code == 200
    assert timeline.text.count(f"trace <span class=\"mono\">{trace_id(OVER_HTTP)}</span>") == 1
    assert timeline.text.count(f"trace <span class=\"mono\">{trace_id(OWN)}</span>") == 1


async def test_a_pass_sent_straight_to_the_log_is_followed_by_its_trace_id(server):
    """Over Kafka with kafka+postgres, onto the embedded log otherwise; a pass out of range is
    rejected, and its trace (not indexed) is read back from the log by history and the CLI.
    (A duplicate of the accepted pass would only be counted on its row: issue 17.)"""
    define_block(server)
    run_id, docs = start_run(server, batch=0, documents=1)
    log = build_log(worker_settings(server))
    await log.start()
    try:
        async with Producer.over_log(log, org_id="default", producer="traced") as producer:
            await producer.pass_completed(run_id, docs[0], 0, {"total": 1}, trace=OVER_LOG)
            await producer.pass_completed(run_id, docs[0], 3, {"total": 1}, trace=OWN)  # n_consensus is 3
    finally:
        await log.close()
    items = items_of(server, run_id, 3)
    assert [(i["status"], i["trace_id"]) for i in items[1:]] == [
        ("accepted", trace_id(OVER_LOG)), ("rejected", trace_id(OWN))]
    traced_in_batches(server, OWN)
    assert any(trace_id(OVER_LOG) in b["trace_ids"] for b in batch_lines(server))
    done = cli(server, "history", run_id, "--json")
    assert done.returncode == 0, done.stderr
    assert [s["trace_id"] for s in json.loads(done.stdout)] == [None, trace_id(OVER_LOG), trace_id(OWN)]


async def test_each_pass_a_worker_runs_is_one_trace(server):
    define_block(server)
    run_id, _ = start_run(server, batch=0, documents=1)

    async def block(block_type, config, handle_inputs, pass_index):
        return {"n": handle_inputs["doc"]["data"]["n"]}

    async with InProcess(server, block, concurrency=4):
        assert (await asyncio.to_thread(wait_until_finished, server, run_id))["lifecycle"]["status"] == "completed"
    passes = [i for i in history(server, run_id) if i["type"] == "DocumentPassCompleted"]
    assert len(passes) == 3 and len({p["trace_id"] for p in passes}) == 3 and None not in {p["trace_id"] for p in passes}
    for p in passes:
        traced_in_batches(server, p["traceparent"])


# -- with OpenTelemetry's SDK: the projector's batch span links to the producer's span -----

@pytest.fixture(scope="module")
def finished_spans():
    """A real in-memory exporter on the process's tracer provider (set once per process)."""
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry import trace as otel
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    if not isinstance(otel.get_tracer_provider(), sdk.TracerProvider):
        otel.set_tracer_provider(sdk.TracerProvider())
    exporter = InMemorySpanExporter()
    otel.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


async def test_the_projectors_batch_span_links_to_the_producers_span(finished_spans, engine, tmp_path):
    from opentelemetry import trace as otel

    from events.sqlite_log import SqliteEventLog
    from tests.fixtures.recorded_log.replay import project_all

    log = SqliteEventLog(tmp_path / "log.db", partitions=6)
    await log.start()
    try:
        async with Producer.over_log(log, org_id="acme", producer="traced") as producer:
            with otel.get_tracer("test.worker").start_as_current_span("worker pass") as worker_pass:
                await producer.pass_completed("run_traced", "doc_0", 0, {"total": 1})
            await producer.pass_completed("run_untraced", "doc_0", 0, {"total": 1})
        await project_all(log, engine)
    finally:
        await log.close()
    produced = worker_pass.get_span_context()
    batches = [s for s in finished_spans.get_finished_spans() if s.name == "runledger.projector.batch"]
    linked = [s for s in batches if any((link.context.trace_id, link.context.span_id)
                                        == (produced.trace_id, produced.span_id) for link in s.links)]
    assert len(linked) == 1 and len(linked[0].links) == 1
    assert linked[0].context.trace_id != produced.trace_id  # the batch is its own trace, linked to the pass
