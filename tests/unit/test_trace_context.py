"""The envelope's optional W3C trace context: absent means the bytes of before, bad means refused."""
from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from events.codec import decode, encode
from events.envelope import Event, trace_id
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
