"""The compiled decode (events/compiled.py) accepts only what the models accept, as the
same Event: on generated events, hostile values and mutated records, `codec.decode` gives
exactly what the models alone give (`from_dict` of orjson's parse): the same event, field
for field and type for type, or the same refusal with the same reason."""
from __future__ import annotations

import copy
import uuid
from datetime import timezone

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from events import bounds, compiled
from events.codec import UndecodableEvent, decode, encode, from_dict
from tests.builders import RunScript

text = st.text(st.sampled_from(["a", "Z", " ", ".", "*", "\x00", "\x1f", "\x7f", "\x85", "\xa0", "é", "🙂",
                                "\u2028", "\\", '"', "1", "e"]), max_size=8)
long_text = st.builds(lambda c, n: c * n, st.sampled_from(["k", "é", "7"]), st.integers(18, 300))
numbers = (st.integers(-(2**70), 2**70) | st.sampled_from([2**63 - 1, -(2**63 - 1), 2**63, 2**64 - 1, 2**64])
           | st.floats(allow_nan=False, allow_infinity=False))
scalars = st.none() | st.booleans() | numbers | text | long_text
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(text | long_text, inner, max_size=4), max_leaves=20)


def deep(value, depth: int):
    for _ in range(depth):
        value = {"d": [value]}
    return value


def keyed(key: str, depth: int):
    value = 1
    for _ in range(depth):
        value = {key: value}
    return value


def the_models(raw: bytes):
    """What decode gave before the compiled schema: orjson, then the models."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UndecodableEvent(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UndecodableEvent("not a JSON object")
    return from_dict(data)


def outcome(decoder, raw: bytes):
    try:
        return decoder(raw)
    except UndecodableEvent as exc:
        return f"refused: {exc}"


def assert_same(raw: bytes) -> None:
    expected, got = outcome(the_models, raw), outcome(decode, raw)
    if isinstance(expected, str):
        assert got == expected
        return
    assert got == expected
    assert type(got.payload) is type(expected.payload)
    assert got.occurred_at.tzinfo is expected.occurred_at.tzinfo is timezone.utc
    assert got.__pydantic_fields_set__ == expected.__pydantic_fields_set__
    assert got.payload.__pydantic_fields_set__ == expected.payload.__pydantic_fields_set__
    assert encode(got) == encode(expected)


def events_of(output, usage=None):
    script = RunScript(run_id="run_1", docs=2, n=3, block_type="extract")
    passed = orjson.loads(encode(script.passed("doc_0", 0)))
    passed["payload"]["output"] = output
    if usage is not None:
        passed["payload"]["usage"] = usage
    created = orjson.loads(encode(script.created()))
    created["payload"]["block_config"] = output if isinstance(output, dict) else {"v": output}
    return [passed, created]


def dumped(data) -> bytes | None:
    try:
        return orjson.dumps(data)
    except (TypeError, orjson.JSONEncodeError):
        return None


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(json_values, st.none() | st.dictionaries(text, json_values, max_size=3))
@example({"a\u0000": 1}, None)
@example({"k" * 23: {"k" * 24: 1}}, None)
@example(deep(1, 16), None)  # 32 containers: the bound
@example([deep(1, 16)], None)  # 33
@example({"u": 1}, {"u": [deep(1, 16)]})
@example(keyed("k" * 23, 32), None)  # the longest keys the walk takes, as deep as allowed: 767 bytes
@example(keyed("k" * 24, 31), None)  # 774 bytes: refused by the models
@example({"x": "y" * bounds.MAX_JSON_BYTES}, None)
@example({"x": "y" * (bounds.MAX_JSON_BYTES - 100)}, {"y": "z" * (bounds.MAX_JSON_BYTES - 100)})
@example({"n": 2**63 - 1, "m": 2**63}, None)
@example({"items": list(range(bounds.MAX_JSON_LIST_LENGTH + 1))}, None)
@example({"x": "y" * (compiled.MAX_RECORD_BYTES + 1)}, None)
def test_a_generated_output_decodes_as_the_models_decode_it(output, usage):
    for data in events_of(output, usage):
        raw = dumped(data)
        if raw is not None:
            assert_same(raw)


MUTATIONS = [
    ("schema_version", 1.0), ("schema_version", True), ("schema_version", "1"), ("schema_version", 0),
    ("schema_version", 2), ("schema_version", None), ("type", "Nope"), ("type", "RunCreated"),
    ("event_id", "not-a-uuid"), ("event_id", str(uuid.UUID(int=7)).upper()), ("event_id", 12),
    ("aggregate_id", " "), ("aggregate_id", "a\tb"), ("aggregate_id", "é"), ("aggregate_id", "x" * 1025),
    ("aggregate_id", "x" * 1024), ("aggregate_id", ""), ("org_id", "\u2003"), ("org_id", "o\x7f"),
    ("producer", "p" * 257), ("producer", "🙂" * 192), ("org_id", "\x85"), ("org_id", 5),
    ("occurred_at", "2026-01-01T00:00:00"), ("occurred_at", "2026-01-01T02:00:00+02:00"),
    ("occurred_at", "1999-12-31T23:59:59Z"), ("occurred_at", "2100-01-01T00:00:00Z"),
    ("occurred_at", "2099-12-31T23:00:00-02:00"), ("occurred_at", 1767225600), ("occurred_at", "2026-01-01"),
    ("occurred_at", "2026-01-01T00:00:00.1234567Z"), ("trace", "00-" + "a" * 32 + "-" + "b" * 16 + "-01"),
    ("trace", "00-" + "0" * 32 + "-" + "b" * 16 + "-01"), ("trace", None), ("extra", 1),
    ("payload.pass_index", 7), ("payload.pass_index", 1.0), ("payload.pass_index", True),
    ("payload.pass_index", "2"), ("payload.attempt", 0), ("payload.duration_ms", -1),
    ("payload.duration_ms", 2**63), ("payload.usage", []), ("payload.usage", {"t": 1.5}),
    ("payload.document_id", "doc 0"), ("payload.document_id", "  "), ("payload.extra", None),
    ("payload.output", None), ("payload", []), ("payload", None), ("payload.n_consensus", 3.0),
    ("payload.n_consensus", 4), ("payload.block_type", "EXTRACT"), ("payload.documents", []),
    ("payload.error", "bare message"), ("payload.error.message", "m" * 16385), ("payload.final", "yes"),
    ("payload.final", 1), ("payload.reason", "r\x00"), ("payload.worker", None),
]


def mutated(data: dict, path: str, value) -> dict:
    data = copy.deepcopy(data)
    *parents, last = path.split(".")
    node = data
    for part in parents:
        if not isinstance(node.get(part), dict):
            return data
        node = node[part]
    if value is None and last in ("extra",):
        node.pop(last, None)
    node[last] = value
    return data


def every_kind_of_event() -> list[dict]:
    script = RunScript(docs=2, n=3)
    events = [script.created(), script.queued(), script.started(), script.passed("doc_0", 0),
              script.failed("doc_0", 1), script.failed("doc_1", 0, final=False), script.cancel(), script.run_failed()]
    return [orjson.loads(encode(e)) for e in events]


@pytest.mark.parametrize("path, value", MUTATIONS, ids=[f"{p}={v!r}"[:60] for p, v in MUTATIONS])
def test_a_mutated_event_decodes_or_is_refused_as_the_models_do(path, value):
    for data in every_kind_of_event():
        assert_same(orjson.dumps(mutated(data, path, value)))
        removed = copy.deepcopy(data)
        removed.pop(path.split(".")[0], None)
        assert_same(orjson.dumps(removed))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10_000), st.binary(min_size=1, max_size=4))
def test_bytes_changed_anywhere_decode_or_are_refused_as_the_models_do(at, junk):
    for data in every_kind_of_event():
        raw = orjson.dumps(data)
        i = at % len(raw)
        assert_same(raw[:i] + junk + raw[i + len(junk):])


def test_every_printable_ascii_identifier_the_pattern_takes_the_models_take():
    """The identifier pattern against the models' check, for every one- and two-character
    id of ASCII (beyond ASCII the models decide)."""
    data = every_kind_of_event()[1]
    for a in range(128):
        for b in (None, *range(32, 127)):
            value = chr(a) + ("" if b is None else chr(b))
            assert_same(orjson.dumps({**data, "org_id": value}))


def test_the_compiled_schema_decodes_the_ordinary_events():
    """So that it cannot silently stop doing its work: every event of a run goes through it."""
    for data in every_kind_of_event():
        raw = orjson.dumps(data)
        assert compiled.vouches(raw) and compiled.from_parsed(orjson.loads(raw)) == the_models(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(json_values)
def test_a_value_the_container_walk_passes_is_within_every_bound(value):
    raw = dumped(value)
    if raw is None or not compiled.vouches(raw):
        return
    parsed = orjson.loads(raw)
    if bounds.parsed_within(parsed):
        assert bounds.json_problem(parsed) is None
