"""Events on the wire: round trips, upcasting, and poison that must be refused clearly."""
from __future__ import annotations

import uuid

import orjson
import pytest

from events.catalogue import DocumentPassCompleted, DocumentPassFailed
from events.codec import UndecodableEvent, build, decode, encode
from tests.builders import RunScript


def test_every_event_round_trips_through_bytes():
    script = RunScript(docs=1)
    events = [script.created(), script.queued(), script.started(), script.passed("doc_0", 0),
              script.failed("doc_0", 1), script.cancel(), script.run_failed()]
    for event in events:
        assert decode(encode(event)) == event


def test_pass_event_ids_are_deterministic_so_retries_cannot_count_twice():
    a = RunScript().passed("doc_0", 1)
    b = RunScript().passed("doc_0", 1, output={"category": "other"})
    assert a.event_id == b.event_id
    assert a.event_id != RunScript().passed("doc_0", 2).event_id
    failed = [RunScript().failed("doc_0", 0, attempt=k) for k in (1, 2)]
    assert failed[0].event_id != failed[1].event_id


def test_a_v1_pass_failed_is_upcast_to_the_error_object():
    current = RunScript().failed("doc_0", 0)
    stored = orjson.loads(encode(current))
    stored["schema_version"] = 1
    stored["payload"]["error"] = "timeout talking to the model"
    stored["payload"]["error_code"] = "timeout"
    event = decode(orjson.dumps(stored))
    assert event.schema_version == DocumentPassFailed.VERSION == 2
    assert event.payload.error.message == "timeout talking to the model"
    assert event.payload.error.code == "timeout"


@pytest.mark.parametrize("raw, reason", [
    (b"\x00\x01not json", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"type": "Nope"}', "unknown event type 'Nope'"),
])
def test_poison_bytes_are_refused_with_a_reason(raw, reason):
    with pytest.raises(UndecodableEvent, match=reason):
        decode(raw)


def test_a_newer_schema_than_the_code_knows_is_refused():
    stored = orjson.loads(encode(RunScript().passed("doc_0", 0)))
    stored["schema_version"] = 9
    with pytest.raises(UndecodableEvent, match="newer than this code knows"):
        decode(orjson.dumps(stored))


def test_an_invalid_payload_names_the_field():
    stored = orjson.loads(encode(RunScript().passed("doc_0", 0)))
    stored["payload"]["pass_index"] = -1
    with pytest.raises(UndecodableEvent, match="pass_index"):
        decode(orjson.dumps(stored))


def test_build_derives_the_natural_id_and_validates():
    event = build("DocumentPassCompleted", "run_1", {"document_id": "d", "pass_index": 0, "output": {}},
                  org_id="o", producer="p")
    again = build("DocumentPassCompleted", "run_1", {"document_id": "d", "pass_index": 0, "output": {"x": 1}},
                  org_id="o", producer="p")
    assert isinstance(event.payload, DocumentPassCompleted) and event.event_id == again.event_id
    with pytest.raises(UndecodableEvent, match="document_id"):
        build("DocumentPassCompleted", "run_1", {"pass_index": 0, "output": {}}, org_id="o", producer="p")
    assert build("RunStarted", "run_1", {}, org_id="o", producer="p", event_id=uuid.UUID(int=1)).event_id.int == 1


def test_ids_must_be_printable_and_bounded():
    payload = {"document_id": "d\x00", "pass_index": 0, "output": {}}
    with pytest.raises(UndecodableEvent, match="control characters"):
        build("DocumentPassCompleted", "run_1", payload, org_id="o", producer="p")
    with pytest.raises(UndecodableEvent, match="at most 256"):
        build("RunStarted", "run_1", {}, org_id="o" * 300, producer="p")
