"""Bytes <-> events. The only place that knows the wire format (orjson) and upcasting."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

import orjson
from pydantic import ValidationError

from . import catalogue  # noqa: F401  (registers every event type before anything decodes)
from . import compiled
from .envelope import NAMESPACE, Event, payload_class
from .keys import block_key
from .upcast import upcast


class UndecodableEvent(ValueError):
    """Bytes on the log that cannot become an Event. Poison input: dead-letter it."""


def encode(event: Event) -> bytes:
    return orjson.dumps(event.model_dump(mode="json"))


def decode(raw: bytes) -> Event:
    """The event a record holds. The compiled schema decodes what it can vouch for (most
    records, several times faster: events/compiled.py); the models decide the rest, and
    every refusal, with its reason."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UndecodableEvent(f"not JSON: {exc}") from None
    event = compiled.from_parsed(data) if compiled.vouches(raw) else None
    if event is not None:
        return event
    if not isinstance(data, dict):
        raise UndecodableEvent("not a JSON object")
    return from_dict(data)


def from_dict(data: dict[str, Any]) -> Event:
    """Validate (and upcast) one event given as a dict."""
    cls = payload_class_or_poison(str(data.get("type")))
    version = data.get("schema_version", cls.VERSION)
    if not isinstance(version, int) or version < 1:
        raise UndecodableEvent(f"bad schema_version {version!r}")
    if version > cls.VERSION:
        raise UndecodableEvent(
            f"{cls.TYPE} schema_version {version} is newer than this code knows ({cls.VERSION})"
        )
    data = {**data, "schema_version": version}
    if version < cls.VERSION and isinstance(data.get("payload"), dict):
        try:
            lifted = upcast(cls.TYPE, version, cls.VERSION, data["payload"])
        except (ValueError, KeyError, TypeError) as exc:
            raise UndecodableEvent(f"upcast failed: {exc}") from None
        data = {**data, "payload": lifted, "schema_version": cls.VERSION}
    try:
        return _keyed_by_payload(Event.model_validate(data))
    except ValidationError as exc:
        raise UndecodableEvent(_short(exc)) from None


def _keyed_by_payload(event: Event) -> Event:
    """A block definition belongs to the block its organisation and payload name, whatever
    aggregate id its producer wrote: logs written with the old, ambiguous block keys fold
    each definition into its own block (keys.block_key keeps every unambiguous old key)."""
    if event.type != "BlockDefined":
        return event
    key = block_key(event.org_id, event.payload.workflow_id, event.payload.block_id)
    return event if key == event.aggregate_id else event.model_copy(update={"aggregate_id": key})


def _short(exc: ValidationError) -> str:
    parts = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5]]
    return "invalid event: " + "; ".join(parts)


def build(
    event_type: str,
    aggregate_id: str,
    payload: dict[str, Any],
    *,
    org_id: str,
    producer: str,
    occurred_at: Any = None,
    event_id: Any = None,
    schema_version: int | None = None,
    trace: str | None = None,
) -> Event:
    """Validate an event given as parts (HTTP ingestion, the producer SDK). The event id
    defaults to the fact's natural key, so a retried send can never count twice."""
    cls = payload_class_or_poison(event_type)
    version = cls.VERSION if schema_version is None else schema_version
    if event_id is None and version == cls.VERSION and isinstance(payload, dict):
        try:
            payload = cls.model_validate(payload)  # validated once: the envelope takes the instance as it is
        except ValidationError as exc:
            raise UndecodableEvent(_short(exc).replace("invalid event: ", "invalid payload: ")) from None
        natural = payload.natural_key(aggregate_id)
        event_id = uuid.uuid5(NAMESPACE, natural) if natural else uuid.uuid4()
    return from_dict({
        "event_id": event_id or uuid.uuid4(), "type": event_type, "schema_version": version,
        "aggregate_id": aggregate_id, "occurred_at": occurred_at or datetime.now(timezone.utc),
        "producer": producer, "org_id": org_id, "payload": payload, "trace": trace,
    })


def payload_class_or_poison(event_type: str):
    try:
        return payload_class(event_type)
    except ValueError as exc:
        raise UndecodableEvent(str(exc)) from None
