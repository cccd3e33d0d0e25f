"""A digest of a read model's projected contents, to compare two databases fed the same log
(a live consumer group against a fresh replay, SQLite against PostgreSQL)."""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from projections import tables

PROJECTED = ("runs", "run_documents", "document_targets", "event_index", "experiments", "blocks",
             "dead_letters", "checkpoints")


async def state_hashes(engine: AsyncEngine) -> dict[str, tuple[int, str]]:
    """Per table: (row count, sha256 of its rows in primary-key order, values canonical)."""
    hashes = {}
    async with engine.connect() as conn:
        for name in PROJECTED:
            table = tables.metadata.tables[name]
            rows = (await conn.execute(select(table).order_by(*table.primary_key.columns))).all()
            digest = hashlib.sha256()
            for row in rows:
                digest.update(orjson.dumps([_canonical(v) for v in row], option=orjson.OPT_SORT_KEYS))
                digest.update(b"\n")
            hashes[name] = (len(rows), digest.hexdigest())
    return hashes


async def state_hash(engine: AsyncEngine) -> str:
    return hashlib.sha256(orjson.dumps(await state_hashes(engine), option=orjson.OPT_SORT_KEYS)).hexdigest()


def _canonical(value):
    if isinstance(value, datetime):
        value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
        return value.isoformat()
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).hex()
    if isinstance(value, float):
        return repr(value)
    return value
