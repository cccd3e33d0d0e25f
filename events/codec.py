"""Bytes <-> events. The only place that knows the wire format (orjson) and upcasting."""
from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from .envelope import Event, payload_class
from .upcast import upcast


class UndecodableEvent(ValueError):
    """Bytes on the log that cannot become an Event. Poison input: dead-letter it."""


def encode(event: Event) -> bytes:
    return orjson.dumps(event.model_dump(mode="json"))


def decode(raw: bytes) -> Event:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UndecodableEvent(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UndecodableEvent("not a JSON object")
    return from_dict(data)


def from_dict(data: dict[str, Any]) -> Event:
    """Validate (and upcast) one event given as a dict."""
    try:
        cls = payload_class(str(data.get("type")))
    except ValueError as exc:
        raise UndecodableEvent(str(exc)) from None
    version = data.get("schema_version", cls.VERSION)
    if not isinstance(version, int) or version < 1:
        raise UndecodableEvent(f"bad schema_version {version!r}")
    if version > cls.VERSION:
        raise UndecodableEvent(
            f"{cls.TYPE} schema_version {version} is newer than this code knows ({cls.VERSION})"
        )
    if version < cls.VERSION and isinstance(data.get("payload"), dict):
        try:
            lifted = upcast(cls.TYPE, version, cls.VERSION, data["payload"])
        except (ValueError, KeyError, TypeError) as exc:
            raise UndecodableEvent(f"upcast failed: {exc}") from None
        data = {**data, "payload": lifted, "schema_version": cls.VERSION}
    try:
        return Event.model_validate(data)
    except ValidationError as exc:
        raise UndecodableEvent(_short(exc)) from None


def _short(exc: ValidationError) -> str:
    parts = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5]]
    return "invalid event: " + "; ".join(parts)
