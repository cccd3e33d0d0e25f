"""A digest of a read model's projected contents, table by table, to compare two read
models fed the same log (a live version against a rebuild or a clean replay, SQLite
against PostgreSQL, a recorded log against the state it must fold to).

Values are compared in the form every backend gives back (`canonical`):
aware UTC times, bytes as hex, integral floats as ints (a JSON column may hand
120.0 back as 120). Projector heartbeats are not state and are left out, and so are the
read columns derived from a row's `state` (projections/store/read_columns.py: they hold nothing more)
and the rows' versions (projections/store/row_versions.py: bookkeeping a replay cuts otherwise).
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.store import tables
from projections.store.read_columns import DERIVED
from projections.store.row_versions import VERSIONS

PROJECTED = ("runs", "run_documents", "document_targets", "event_index", "experiments", "blocks",
             "dead_letters", "checkpoints", "quarantined", "parked_events",
             "history_heads", "run_snapshots", "event_deliveries")


async def state_hashes(engine: AsyncEngine) -> dict[str, tuple[int, str]]:
    """Per table: (row count, sha256 of its rows in primary-key order, values canonical)."""
    hashes = {}
    async with engine.connect() as conn:
        for name in PROJECTED:
            table = tables.metadata.tables.get(name)
            if table is None:
                continue
            left_out = DERIVED.get(name, ()) + VERSIONS.get(name, ())
            columns = [c for c in table.columns if c.name not in left_out]
            rows = (await conn.execute(select(*columns).order_by(*table.primary_key.columns))).all()
            digest = hashlib.sha256()
            for row in rows:
                digest.update(orjson.dumps([canonical(v) for v in row], option=orjson.OPT_SORT_KEYS))
                digest.update(b"\n")
            hashes[name] = (len(rows), digest.hexdigest())
    return hashes


async def state_hash(engine: AsyncEngine) -> str:
    return hashlib.sha256(orjson.dumps(await state_hashes(engine), option=orjson.OPT_SORT_KEYS)).hexdigest()


def canonical(value: Any) -> Any:
    """The comparable form of a stored value: what the read model gives back on every backend."""
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, datetime):
        value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
        return value.isoformat()
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).hex()
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")  # NUL-free text columns store U+FFFD
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)  # a JSON column may give 120.0 back as 120 (SQLite does)
    return value
