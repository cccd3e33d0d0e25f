"""The compiled decode: a parsed record -> `Event` in one call into pydantic-core.

The contract (envelope.py, catalogue.py, bounds.py) is pydantic models with Python
validators: the bounds walk over every free-form value, the identifier checks, the size
measurements, the payload class picked by type. Decoding the log ran all of them for every
event (~45 us for a workload pass, 40 % of it the walk). Here the models' own schemas are
compiled once into one schema pydantic-core checks in Rust, building the very classes the
models build (`Event`, `DocumentPassCompleted`, ...), on the very dict the models would
validate (orjson's parse of the record):

- the envelope's `type` picks the payload's schema (a tagged union), where the model does
  it in a Python before-validator;
- identifiers must be printable ASCII with a character that is not a space (a Rust
  pattern): then they are within their byte bound as they are within their character bound;
- free-form JSON: only its containers are walked, in Python (`bounds.parsed_within`: depth,
  list lengths, short clean keys), not every value;
- text keeps its length bound; lone surrogates cannot come out of orjson;
- everything else (lengths, ranges, literals, defaults, extra fields forbidden) is the
  models' own schema, unchanged.

What the schema no longer checks is proven from the record's bytes first: a record of at
most `MAX_RECORD_BYTES` cannot hold a value beyond the contract's size bounds (orjson
writes a parsed value back in at most 8x the bytes it took: a number like `1e15` is the
worst case), nor 50,000 values; no run of 19 digits means every integer lies within
+-(2**63 - 1); orjson reads no NaN, no infinity and no lone surrogate.

So the compiled decode only *accepts*: what it accepts decodes to an Event equal to the one
the models build, and anything else (a refusal, a big record, a long digit run, a
non-ASCII id or long key, an older schema version to upcast, a BlockDefined, keyed by its
payload) goes to the models, which decide, with the reasons they give today.
tests/unit/test_compiled_decode.py holds the two to that on generated events, hostile
values and mutated bytes.
"""
from __future__ import annotations

from datetime import timezone
from typing import Any, Callable

from pydantic import ValidationError
from pydantic_core import SchemaValidator, core_schema as cs

from . import bounds
from .envelope import Event, Payload, known_types, payload_class

MAX_RECORD_BYTES = bounds.MAX_JSON_BYTES // 16
"""32 KiB: 16x it is within every size bound of the contract (see the module docstring)."""
_DIGITS = bytes.maketrans(b"123456789", b"000000000")
_LONG_INT = b"0" * 19
_ID = r"^[\x20-\x7e]*[\x21-\x7e][\x20-\x7e]*$"


def vouches(raw: bytes) -> bool:
    """Whether the compiled schema may decode `raw` (its size and its integers)."""
    return len(raw) <= MAX_RECORD_BYTES and _LONG_INT not in raw.translate(_DIGITS)


def from_parsed(data: Any) -> Event | None:
    """The event of a record that `vouches`, parsed by orjson; None: the models decide."""
    if type(data) is not dict:
        return None
    try:
        event = _VALIDATOR.validate_python(data)
    except ValidationError:
        return None
    at = event.occurred_at
    if at.utcoffset() is None or not bounds.MIN_OCCURRED_AT <= at < bounds.MAX_OCCURRED_AT:
        return None
    if event.type == "BlockDefined":
        return None  # keyed by its payload (codec._keyed_by_payload): rare, the models do it
    event.__dict__["occurred_at"] = at.astimezone(timezone.utc)  # what Event._utc returns
    return event


# -- compiling the models' schemas ---------------------------------------------------

def _parsed_json(value: Any) -> Any:
    if not bounds.parsed_within(value):
        raise ValueError("not vouched for here")  # the models say what, if anything, is wrong
    return value


def _json(inner: dict) -> dict:
    """`checked_json`: a free-form value as the parser read it, its containers walked."""
    return cs.no_info_after_validator_function(_parsed_json, _compile(inner))


def _identifier(inner: dict) -> dict:
    return {**_compile(inner), "pattern": _ID}


def _unchecked(inner: dict) -> dict:
    return _compile(inner)


def _function(node: dict) -> Callable:
    fn = node["function"]["function"]
    return getattr(fn, "__func__", fn)


def _compile(node: Any) -> Any:
    """The models' schema with the Python validators `_REPLACED` names replaced."""
    if isinstance(node, list):
        return [_compile(n) for n in node]
    if not isinstance(node, dict):
        return node
    if node.get("type") in ("function-after", "function-wrap", "function-before") and "schema" in node:
        fn = _function(node)
        replace = _REPLACED.get(fn) or (_identifier if getattr(fn, "identifier_bytes", None) else None)
        if replace is not None:
            return replace(node["schema"])
    return {k: _compile(v) for k, v in node.items() if k not in ("ref", "metadata", "serialization")}


def _exactly(values: list[int]) -> dict:
    """One of these ints, and an int (not True for 1: the models' own check differs there)."""
    return cs.union_schema([cs.int_schema(ge=v, le=v, strict=True) for v in values])


def _envelope(event_type: str) -> dict:
    """The Event model's schema for one payload type."""
    model = Event.__pydantic_core_schema__
    while model["type"] != "model":  # definitions, and the after-validator matching the type
        model = model["schema"]
    fields = model["schema"]
    while fields["type"] != "model-fields":  # the before-validator that picks the payload class
        fields = fields["schema"]
    cls = payload_class(event_type)
    own = {"type": cs.literal_schema([event_type]), "schema_version": _exactly([cls.VERSION]),
           "payload": _compile(cls.__pydantic_core_schema__)}
    compiled = {}  # in the model's order: the order of the event's __dict__, so of its dump
    for name, field in fields["fields"].items():
        field = {k: v for k, v in field.items() if k not in ("metadata", "serialization_exclude_if")}
        compiled[name] = {**field, "schema": own[name] if name in own else _compile(field["schema"])}
    return cs.model_schema(Event, cs.model_fields_schema(compiled, extra_behavior="forbid"),
                           config=cs.CoreConfig(extra_fields_behavior="forbid"))


_REPLACED: dict[Callable, Callable[[dict], dict]] = {}


def _build() -> SchemaValidator:
    from . import catalogue

    _REPLACED.update({
        bounds.checked_json: _json,
        bounds.checked_text: _unchecked,  # only surrogates, which the parser refuses
        catalogue._bounded_documents: _unchecked,  # a size: MAX_RECORD_BYTES
        Payload._fits_one_message.__func__: _unchecked,  # a size: MAX_RECORD_BYTES
        Event._utc.__func__: _unchecked,  # checked and converted by `decode`
    })
    union = cs.tagged_union_schema({t: _envelope(t) for t in known_types()}, discriminator="type")
    return SchemaValidator(union)


_VALIDATOR = _build()
