"""The event contract bounds everything the fold and the store will see (events/bounds.py).

Each hostile input of the hardening issue is refused as an invalid event (a 422 over
HTTP, a dead letter from the log), never an exception of another kind."""
from __future__ import annotations

import uuid

import orjson
import pytest

from events import bounds
from events.codec import UndecodableEvent, build, decode, encode
from tests.builders import RunScript


def pass_event(output=None, **payload):
    body = {"document_id": "doc_0", "pass_index": 0, "output": {"category": "x"} if output is None else output,
            **payload}
    return build("DocumentPassCompleted", "run_1", body, org_id="org_a", producer="test")


def refused(output=None, match: str = "", **payload) -> str:
    with pytest.raises(UndecodableEvent, match=match) as info:
        pass_event(output, **payload)
    return str(info.value)


def nested(depth: int, leaf=1):
    value = leaf
    for _ in range(depth - 1):
        value = [value]
    return value


def test_outputs_nested_deeper_than_the_bound_are_refused_without_recursion():
    assert pass_event({"v": nested(bounds.MAX_JSON_DEPTH)})  # 32 containers
    refused({"v": nested(bounds.MAX_JSON_DEPTH + 1)}, "nested deeper than 32")
    refused(nested(100_000), "nested deeper")  # far past Python's recursion limit


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_refused(bad):
    refused({"total": bad}, "not a JSON number")


def test_integers_beyond_64_bits_are_refused():
    assert pass_event({"n": 2**63 - 1, "m": -(2**63 - 1)})
    refused({"n": 2**64}, "outside")
    refused({"n": -(2**63)}, "outside")
    refused({"n": 10**5000}, "outside")  # too long for str(): the message must still form


def test_lone_surrogates_are_refused_in_values_keys_and_ids():
    refused({"v": "a\ud800b"}, "surrogate")
    refused({"k\udfff": 1}, "surrogate")
    with pytest.raises(UndecodableEvent, match="aggregate_id"):
        build("RunStarted", "run_\ud800", {}, org_id="org_a", producer="test")
    with pytest.raises(UndecodableEvent, match="error.message"):  # pydantic refuses them in every str field
        build("RunFailed", "run_1", {"error": {"message": "\udc00"}}, org_id="org_a", producer="test")


def test_keys_with_control_characters_are_refused_so_no_two_keys_share_a_stored_path():
    refused({"a\u0000": 1, "a\ufffd": 2}, "control character")
    refused({"tab\there": 1}, "control character")
    assert pass_event({"a\ufffd": 2, "café": 1, "": 0})


def test_keys_and_target_paths_are_bounded():
    refused({"k" * (bounds.MAX_KEY_CHARS + 1): 1}, "longer than 256")
    assert pass_event({"k" * bounds.MAX_KEY_CHARS: 1})
    deep_path = {"k" * 200: {"k" * 200: {"k" * 200: {"k" * 200: 1}}}}
    refused(deep_path, "target path longer than 768 bytes")
    assert pass_event({"é" * 190: {"k" * 250: 1}})  # 380 + 1 + 250 bytes


def test_lists_values_and_sizes_are_bounded():
    assert pass_event({"items": list(range(bounds.MAX_JSON_LIST_LENGTH))})
    refused({"items": list(range(bounds.MAX_JSON_LIST_LENGTH + 1))}, "list longer than 2000")
    many = {f"k{i}": list(range(1000)) for i in range(60)}
    refused(many, "more than 50000 values")
    refused({"text": "x" * bounds.MAX_JSON_BYTES}, "larger than")


def test_a_payload_fits_one_kafka_message_whatever_mix_of_bounded_fields_it_carries():
    half = {"text": "x" * (bounds.MAX_JSON_BYTES - 100)}
    assert pass_event(half)
    with pytest.raises(UndecodableEvent, match="more than 983040"):
        pass_event(half, usage=half)


def test_values_that_are_not_json_are_refused():
    refused({"when": uuid.uuid4()}, "not a JSON value")
    refused({1: "x"}, "keys must be strings")


def test_pass_index_and_attempt_are_bounded():
    assert pass_event(pass_index=bounds.MAX_PASS_INDEX)
    refused(match="pass_index", pass_index=2**70)
    refused(match="pass_index", pass_index=bounds.MAX_PASS_INDEX + 1)
    refused(match="attempt", attempt=2**70)
    refused(match="duration_ms", duration_ms=2**70)


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "1999-12-31T23:59:59Z",
                                  "2100-01-01T00:00:00Z", "2026-01-01T00:00:00"])
def test_occurred_at_out_of_range_or_naive_is_a_validation_error(when):
    with pytest.raises(UndecodableEvent, match="occurred_at"):
        build("RunStarted", "run_1", {}, org_id="org_a", producer="test", occurred_at=when)


def test_free_form_fields_beside_outputs_are_bounded_too():
    with pytest.raises(UndecodableEvent, match="usage"):
        pass_event(usage={"tokens": float("nan")})
    with pytest.raises(UndecodableEvent, match="error.message"):
        build("RunFailed", "run_1", {"error": {"message": "x" * (bounds.MAX_TEXT_CHARS + 1)}},
              org_id="org_a", producer="test")
    with pytest.raises(UndecodableEvent, match="config"):
        build("BlockDefined", "block:org_a:wf:b", {"workflow_id": "wf", "block_id": "b", "block_type": "extract",
                                                   "config": nested(40, {}), "fingerprint": "f", "version_id": "v"},
              org_id="org_a", producer="test")


def test_document_lists_are_bounded_in_count_and_size():
    script = RunScript(docs=1)
    body = script.created().model_dump(mode="json")["payload"]
    doc = body["documents"][0]
    too_many = [{**doc, "document_id": f"d{i}"} for i in range(bounds.MAX_DOCUMENTS + 1)]
    with pytest.raises(UndecodableEvent, match="documents"):
        build("RunCreated", "run_1", {**body, "documents": too_many}, org_id="org_a", producer="test")
    big = [{**doc, "document_id": f"d{i}", "handle_inputs": {"in": {"data": "x" * 200_000}}} for i in range(4)]
    with pytest.raises(UndecodableEvent, match="document list"):
        build("RunCreated", "run_1", {**body, "documents": big}, org_id="org_a", producer="test")
    with pytest.raises(UndecodableEvent, match="handle_inputs"):
        build("RunCreated", "run_1", {**body, "documents": [{**doc, "handle_inputs": {"x": nested(50)}}]},
              org_id="org_a", producer="test")


def test_ids_are_bounded_in_bytes_and_blank_organisations_refused():
    assert build("RunStarted", "run_1", {}, org_id="é" * 256, producer="test")
    with pytest.raises(UndecodableEvent, match="768 bytes"):
        build("RunStarted", "run_1", {}, org_id="🙂" * 200, producer="test")
    with pytest.raises(UndecodableEvent, match="1024 bytes"):
        build("RunStarted", "🙂" * 300, {}, org_id="org_a", producer="test")
    for blank in ("", "   "):
        with pytest.raises(UndecodableEvent, match="org_id"):
            build("RunStarted", "run_1", {}, org_id=blank, producer="test")


def test_an_event_on_the_log_beyond_the_bounds_is_poison():
    data = orjson.loads(encode(pass_event()))
    data["payload"]["output"] = "HOLE"
    deep = b'{"v": ' + b"[" * 600 + b"]" * 600 + b"}"
    with pytest.raises(UndecodableEvent, match="nested deeper"):
        decode(orjson.dumps(data).replace(b'"HOLE"', deep))
    data["payload"]["output"] = {"a\u0000": 1}
    with pytest.raises(UndecodableEvent, match="control character"):
        decode(orjson.dumps(data))
