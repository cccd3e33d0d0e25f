"""The envelope's optional W3C trace context: absent means the bytes of before, bad means
refused; and which trace the producer stamps (given, current, OpenTelemetry's, none)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from pydantic import ValidationError

from events.codec import decode, encode
from events.envelope import Event, is_traceparent, trace_id
from events.producer import InvalidEvent, Producer
from events.trace import current_traceparent, parse_header, span, use_trace
from tests.builders import RunScript

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
ENVELOPE_BEFORE_TRACE = ["event_id", "type", "schema_version", "aggregate_id", "occurred_at", "producer", "org_id",
                         "payload"]


def test_an_event_without_a_trace_encodes_as_before_the_field_existed():
    event = RunScript().passed("doc_0", 0)
    raw = encode(event)
    assert list(orjson.loads(raw)) == ENVELOPE_BEFORE_TRACE
    assert "trace" not in event.model_dump(mode="json")
    assert decode(raw) == event and decode(raw).trace is None


def test_a_trace_round_trips_through_bytes():
    event = RunScript().passed("doc_0", 0).model_copy(update={"trace": TRACEPARENT})
    raw = encode(event)
    assert orjson.loads(raw)["trace"] == TRACEPARENT
    assert decode(raw).trace == TRACEPARENT


@pytest.mark.parametrize("bad", [
    "", "not-a-trace", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\n",
])
def test_an_invalid_traceparent_is_refused_by_the_contract(bad):
    data = orjson.loads(encode(RunScript().passed("doc_0", 0)))
    with pytest.raises(ValidationError, match="trace"):
        Event.model_validate({**data, "trace": bad})


def test_the_recorded_log_is_written_byte_for_byte_as_before():
    """Today's code writes every record of the recorded log with exactly the bytes on file."""
    from tests.fixtures.recorded_log.make import record
    from tests.fixtures.recorded_log.replay import read_records
    assert [r.value for r in record()] == [r.value for r in read_records()]


def test_the_trace_id_is_the_traceparents_second_field():
    assert trace_id(TRACEPARENT) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace_id(None) is None


# -- which trace an event gets (events.trace) and how a header is read --------------------

OTHER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.mark.parametrize("header, read", [
    (TRACEPARENT, TRACEPARENT),
    (f"  {TRACEPARENT}\t", TRACEPARENT),
    ("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-adds", TRACEPARENT),
    ("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", TRACEPARENT),
    ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None),
    (TRACEPARENT + "-extra", None),
    ("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", None),
    (TRACEPARENT.upper(), None),
    ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", None),
    ("", None), (None, None), ("garbage", None),
])
def test_a_traceparent_header_is_read_by_w3cs_receiving_rules(header, read):
    assert parse_header(header) == read


def producer() -> Producer:
    return Producer(transport=None, org_id="acme", producer="unit")


def test_the_producer_stamps_the_given_trace_else_the_current_one_else_none():
    p = producer()
    assert p.build("RunStarted", "run_1", {}).trace is None
    with use_trace(TRACEPARENT):
        assert p.build("RunStarted", "run_1", {}).trace == TRACEPARENT
        assert p.build("RunStarted", "run_1", {}, trace=OTHER).trace == OTHER
    assert p.build("RunStarted", "run_1", {}).trace is None


def test_a_malformed_trace_is_an_invalid_event_and_use_trace_refuses_one():
    with pytest.raises(InvalidEvent, match="trace"):
        producer().build("RunStarted", "run_1", {}, trace="00-nope")
    with pytest.raises(ValueError):
        with use_trace("00-nope"):
            pass


def test_a_span_of_work_is_a_new_trace_or_a_new_span_of_the_current_one():
    with span("runledger.pass", {}) as first:
        assert current_traceparent() == first and is_traceparent(first)
    with span("runledger.pass", {}) as second:
        assert trace_id(second) != trace_id(first)
    with use_trace(TRACEPARENT), span("runledger.pass", {}) as child:
        assert trace_id(child) == trace_id(TRACEPARENT) and child != TRACEPARENT
    assert current_traceparent() is None


def test_the_current_opentelemetry_span_becomes_the_events_traceparent():
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    tracer = sdk.TracerProvider().get_tracer("unit")
    with tracer.start_as_current_span("worker pass") as current:
        event = producer().build("RunStarted", "run_1", {})
    context = current.get_span_context()
    assert event.trace == f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def test_without_opentelemetry_installed_events_still_carry_traces(tmp_path):
    """The `otel` extra is optional: with the package unimportable, the SDK and spans work."""
    script = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "from events import trace\n"
        "from events.producer import Producer\n"
        "assert not trace.otel_available()\n"
        "with trace.span('runledger.pass', {}) as tp:\n"
        "    event = Producer(None, org_id='acme').build('RunStarted', 'run_1', {})\n"
        "assert event.trace == tp and trace.is_traceparent(tp)\n"
        "trace.record_span('batch', 0, 1, [tp], {})\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_a_span_of_work_is_a_real_span_when_a_tracer_records():
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry import trace as otel
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    if not isinstance(otel.get_tracer_provider(), sdk.TracerProvider):
        otel.set_tracer_provider(sdk.TracerProvider())
    exporter = InMemorySpanExporter()
    otel.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))
    with use_trace(TRACEPARENT), span("runledger.pass", {"runledger.run_id": "run_1"}) as traceparent:
        event = producer().build("RunStarted", "run_1", {})
    [finished] = [s for s in exporter.get_finished_spans() if s.attributes.get("runledger.run_id") == "run_1"]
    assert event.trace == traceparent
    assert traceparent[3:52] == f"{finished.context.trace_id:032x}-{finished.context.span_id:016x}"
    assert finished.parent.span_id == int(TRACEPARENT[36:52], 16) and trace_id(traceparent) == trace_id(TRACEPARENT)
