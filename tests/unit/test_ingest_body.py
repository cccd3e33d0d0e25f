"""The ingestion body read once (services/api/ingest_body.py, issue 11): orjson and a shape
check instead of FastAPI's json + IngestBody, accepting exactly what IngestBody accepts, with
the same values, and never reading a number differently from the JSON it was sent as."""
from __future__ import annotations

import json

import orjson
import pytest
from fastapi.exceptions import RequestValidationError
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from events.codec import UndecodableEvent, build
from services.api.bodies import IngestBody
from services.api.ingest_body import OPENAPI, ingest_items

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids,
                                                                                        max_size=3), max_leaves=6)
GOOD = {
    "type": ["RunQueued", "RunStarted", "DocumentPassCompleted"], "run_id": ["run_1"],
    "event_id": [None, "3f1c2a3e-9b4d-5e8f-a1b2-c3d4e5f60718"],
    "occurred_at": [None, "2026-01-01T00:00:00Z", "2026-01-01"],
    "schema_version": [None, 1, 2],
    "trace": [None, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"],
}
PAYLOADS = {"RunQueued": {}, "RunStarted": {"worker": "w"},
            "DocumentPassCompleted": {"document_id": "d", "pass_index": 0, "output": {"total": 1}}}
BAD = {
    "type": ["RunCreated", "", 3, None], "run_id": ["", 7, None],
    "payload": [[], "x", None], "event_id": ["", 5], "occurred_at": ["", "yesterday", 1_700_000_000, 1.5, []],
    "schema_version": ["1", 1.0, True, -1], "trace": ["", 1], "extra": [0],
}


@st.composite
def events(draw):
    """A valid event, or one with a single field made wrong, dropped or added: the bodies
    where a quick check could differ from the model."""
    event = {name: draw(st.sampled_from(good)) for name, good in GOOD.items()
             if name in ("type", "run_id") or draw(st.booleans())}
    if event["type"] == "DocumentPassCompleted" or draw(st.booleans()):
        event["payload"] = PAYLOADS[event["type"]]
    change = draw(st.sampled_from([None, "drop", *BAD]))
    if change == "drop":
        event.pop(draw(st.sampled_from(sorted(event))))
    elif change is not None:
        event[change] = draw(st.sampled_from(BAD[change]))
    return event


bodies = st.one_of(*[st.fixed_dictionaries({"events": st.lists(events(), min_size=1, max_size=2)})] * 4,
                   st.fixed_dictionaries({}, optional={"events": st.lists(events(), max_size=3) | values,
                                                       "other": values}), values)


def built(items: list[dict]) -> list[dict] | None:
    """What the route appends for these items (commands.ingest_event's codec call), or None
    when the codec refuses one. The clock and random ids are left out: they differ per call."""
    try:
        events = [build(i["type"], i["run_id"], i["payload"], org_id="org", producer="http:org",
                        occurred_at=i["occurred_at"], event_id=i["event_id"], schema_version=i["schema_version"],
                        trace=i["trace"]) for i in items]
    except UndecodableEvent:
        return None
    return [e.model_dump(exclude={"event_id", "occurred_at"} if i["occurred_at"] is None else {"event_id"})
            for e, i in zip(events, items)]


def through_the_model(data) -> list[dict] | None:
    """The old route: FastAPI validated IngestBody, then the codec validated again."""
    try:
        body = IngestBody.model_validate(data)
    except ValidationError:
        return None
    return built([event.model_dump() for event in body.events])


def read_once(data) -> list[dict] | None:
    try:
        items = ingest_items(json.dumps(data).encode(), "application/json")
    except RequestValidationError:
        return None
    return built(items)


@settings(max_examples=600, deadline=None)
@given(data=bodies)
def test_a_body_is_appended_exactly_when_the_model_and_the_codec_accepted_it_and_as_the_same_events(data):
    assert read_once(data) == through_the_model(data), data


@pytest.mark.parametrize("number", ["18446744073709551616", "-9223372036854775809", "123456789012345678901"])
def test_integers_orjson_would_read_as_floats_keep_their_exact_value(number):
    """orjson turns these into floats; the contract must see the integer (and refuse it)."""
    raw = ('{"events": [{"type": "RunStarted", "run_id": "r", "payload": {"v": %s}}]}' % number).encode()
    assert isinstance(orjson.loads(raw)["events"][0]["payload"]["v"], float)  # why the check exists
    [item] = ingest_items(raw, "application/json")
    assert item["payload"]["v"] == int(number) and isinstance(item["payload"]["v"], int)


@pytest.mark.parametrize("raw", [b"", b"\xff{not json", b"{not json", b"[" * 5000 + b"]" * 5000,
                                 b'{"events": [{"type": "RunStarted", "run_id": "r"}]'])
def test_bytes_that_are_no_body_are_a_validation_error(raw):
    with pytest.raises(RequestValidationError) as refused:
        ingest_items(raw, "application/json")
    assert all(error["loc"][0] == "body" for error in refused.value.errors())


def test_another_content_type_is_refused_and_json_suffixes_are_json():
    raw = b'{"events": [{"type": "RunStarted", "run_id": "r"}]}'
    with pytest.raises(RequestValidationError):
        ingest_items(raw, "text/plain")
    assert ingest_items(raw, "application/vnd.api+json; charset=utf-8")[0]["run_id"] == "r"
    assert ingest_items(raw, None)[0]["run_id"] == "r"  # no content type: JSON, as FastAPI reads it


def test_values_orjson_refuses_reach_the_contract_as_json_reads_them():
    """NaN and a lone surrogate are valid for json; the codec refuses them with its own message."""
    raw = b'{"events": [{"type": "RunStarted", "run_id": "r", "payload": {"v": NaN, "s": "\\ud800"}}]}'
    [item] = ingest_items(raw, "application/json")
    assert item["payload"]["s"] == "\ud800" and item["payload"]["v"] != item["payload"]["v"]


def test_the_documented_body_is_ingest_body():
    schema = OPENAPI["requestBody"]["content"]["application/json"]["schema"]
    assert "$defs" not in json.dumps(schema) and schema["required"] == ["events"]
    event = schema["properties"]["events"]["items"]
    assert set(event["properties"]) == set(IngestBody.model_fields["events"].annotation.__args__[0].model_fields)
    assert event["additionalProperties"] is False and schema["properties"]["events"]["maxItems"] == 1000
