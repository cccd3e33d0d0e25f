"""The body of `POST /v1/ledger/events`, read once.

The route used to let FastAPI parse the body (stdlib json) and validate it as `IngestBody`,
after which `codec.build` validated every event again, payload and bounds included. Here
the bytes are parsed with orjson and checked for the body's *shape* only (the fields
`IngestBody` allows, of the types it allows); what each event says is validated once, by
the codec (`commands.ingest_event`). A body the quick check is not sure of (a missing or
extra field, another type, a value orjson will not read, such as NaN or a lone surrogate)
is validated by `IngestBody` itself, so every shape error is the model's own 422.

`IngestBody` stays the documented body: `OPENAPI` is its JSON schema for the route.
"""
from __future__ import annotations

import json
import typing
from typing import Any

import orjson
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from .bodies import IngestBody, IngestEvent

_TYPES = frozenset(typing.get_args(IngestEvent.model_fields["type"].annotation))
_FIELDS = frozenset(IngestEvent.model_fields)
_MAX_EVENTS = 1000  # IngestBody.events' max_length
_OPTIONAL_TEXT = ("event_id", "occurred_at", "trace")
_DIGITS = bytes(ord("0") if chr(b).isdigit() and b < 128 else ord(" ") for b in range(256))
_LONG_NUMBER = b"0" * 19
"""orjson reads an integer outside [-2**63, 2**64) as a float: silently, where the contract
refuses it. A body with 19 digits in a row (anywhere, strings included) is read by json instead.
(Found by translating every digit to "0" and searching: a tenth of orjson's time, where a
regular expression took longer than the parse.)"""


def ingest_items(raw: bytes, content_type: str | None) -> list[dict[str, Any]]:
    """The body's events as dicts with every IngestEvent field (absent ones None, payload {});
    raises RequestValidationError (the API's 422) when the body is not an IngestBody."""
    data = _json(raw, content_type)
    items = _quick(data)
    if items is not None:
        return items
    try:
        body = IngestBody.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]) \
            from None
    return [{name: getattr(event, name) for name in _FIELDS} for event in body.events]


def _json(raw: bytes, content_type: str | None) -> Any:
    """As FastAPI reads a body: JSON unless another content type is declared."""
    if not raw:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    if content_type and not _is_json(content_type):
        raise RequestValidationError([{"type": "content_type", "loc": ("body",), "input": None,
                                       "msg": f"expected a JSON body (application/json), not {content_type[:100]}"}])
    if _LONG_NUMBER not in raw.translate(_DIGITS):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    try:  # JSON orjson refuses (NaN, a lone surrogate) or would round: the contract explains it
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body", getattr(exc, "pos", 0)),
                                       "msg": "JSON decode error", "input": {},
                                       "ctx": {"error": getattr(exc, "msg", str(exc))}}]) from None


def _is_json(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or kind.startswith("application/") and kind.endswith("+json")


def _quick(data: Any) -> list[dict[str, Any]] | None:
    """The events, if the body plainly has IngestBody's shape; None when unsure. Never
    accepts what IngestBody would refuse (it is narrower: e.g. schema_version only as an int)."""
    if type(data) is not dict or data.keys() != {"events"}:
        return None
    events = data["events"]
    if type(events) is not list or not 1 <= len(events) <= _MAX_EVENTS:
        return None
    items = []
    for event in events:
        item = _quick_item(event)
        if item is None:
            return None
        items.append(item)
    return items


def _quick_item(event: Any) -> dict[str, Any] | None:
    if type(event) is not dict or not _FIELDS.issuperset(event):
        return None
    kind, run_id, payload = event.get("type"), event.get("run_id"), event.get("payload", {})
    if type(kind) is not str or kind not in _TYPES or type(run_id) is not str or not run_id:
        return None
    if type(payload) is not dict:
        return None
    if any(event.get(name) is not None and type(event[name]) is not str for name in _OPTIONAL_TEXT):
        return None
    version = event.get("schema_version")
    if version is not None and type(version) is not int or event.get("occurred_at") == "":
        return None  # (the codec would read an empty occurred_at as "now"; the model refuses it)
    return {"type": kind, "run_id": run_id, "payload": payload, "event_id": event.get("event_id"),
            "occurred_at": event.get("occurred_at"), "schema_version": version, "trace": event.get("trace")}


def _inline_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema with its `$defs` put in place (OpenAPI has no `$defs` at that level)."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(value) for value in node]
        return node

    return resolve(schema)


OPENAPI = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": _inline_defs(IngestBody.model_json_schema(mode="validation"))}}}}
"""`openapi_extra` of the route: the body is documented as IngestBody, as when FastAPI read it."""
