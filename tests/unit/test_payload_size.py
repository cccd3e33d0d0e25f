"""One event's payload stays under MAX_PAYLOAD_BYTES as JSON (so the whole event fits one
Kafka message), however it arrives: built from parts with or without an event id, decoded
from bytes, or constructed directly. The check runs once per payload (issue 11: pydantic
re-ran it whenever an envelope was handed a validated payload), and must still run."""
from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from events.bounds import MAX_PAYLOAD_BYTES
from events.catalogue import DocumentPassCompleted
from events.codec import UndecodableEvent, build, decode, encode

HALF = {f"k{i}": "a" * 400 for i in range(1200)}  # ~490 KB: each field within its own bound


def test_a_payload_over_the_bound_is_refused_however_it_arrives():
    payload = {"document_id": "d", "pass_index": 0, "output": HALF, "usage": HALF}
    assert len(orjson.dumps(payload)) > MAX_PAYLOAD_BYTES
    for event_id in (None, "3f1c2a3e-9b4d-5e8f-a1b2-c3d4e5f60718"):
        with pytest.raises(UndecodableEvent, match="bytes as JSON, more than"):
            build("DocumentPassCompleted", "run_1", payload, org_id="org", producer="p", event_id=event_id)
    with pytest.raises(ValidationError, match="bytes as JSON, more than"):
        DocumentPassCompleted(**payload)
    fine = build("DocumentPassCompleted", "run_1", {**payload, "usage": None}, org_id="org", producer="p")
    raw = encode(fine).replace(b'"usage":null', b'"usage":' + orjson.dumps(HALF))
    with pytest.raises(UndecodableEvent, match="bytes as JSON, more than"):
        decode(raw)
    assert decode(encode(fine)) == fine


def _payload_of(size: int) -> dict:
    """A pass payload whose JSON is exactly `size` bytes, with what a measure could miscount:
    multi-byte UTF-8, escaped control characters, floats in exponent form, -0.0. Sized as
    the reference measure (`orjson.dumps(model_dump(mode="json"))`), unvalidated."""
    base = {"document_id": "d", "pass_index": 0,
            "output": {"tail": "", "text": "é😀\u2028\x1f\"\\", "n": [1e16, 5e-324, -0.0, 0.1]},
            "usage": HALF}
    as_json = lambda: len(orjson.dumps(DocumentPassCompleted.model_construct(**base).model_dump(mode="json")))
    base["output"]["tail"] = "a" * (size - as_json())  # the dump carries the defaulted fields too
    assert as_json() == size
    return base


def test_the_bound_is_exact_in_bytes_as_json():
    """The measure counts the bytes the event will carry (orjson's compact UTF-8), to the byte."""
    at_bound = _payload_of(MAX_PAYLOAD_BYTES)
    assert DocumentPassCompleted(**at_bound).output["tail"]
    event = build("DocumentPassCompleted", "run_1", at_bound, org_id="org", producer="p")
    assert decode(encode(event)) == event
    over = _payload_of(MAX_PAYLOAD_BYTES + 1)
    with pytest.raises(ValidationError, match=f"{MAX_PAYLOAD_BYTES + 1} bytes as JSON"):
        DocumentPassCompleted(**over)
    with pytest.raises(UndecodableEvent, match=f"{MAX_PAYLOAD_BYTES + 1} bytes as JSON"):
        build("DocumentPassCompleted", "run_1", over, org_id="org", producer="p")
