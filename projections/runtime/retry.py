"""Retry a quarantined aggregate's parked events once the code that failed on them is fixed.

Kept apart from `quarantine` (which the batch itself uses to park events): a retry folds
and saves through the batch, so it sits above both.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.runtime import batch as batch_module, changes
from projections.runtime.quarantine import parked_records, quarantine_key
from projections.store.tables import parked_events, quarantined


@dataclass
class RetryOutcome:
    aggregate_id: str
    applied: int = 0
    lifted: bool = False
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"aggregate_id": self.aggregate_id, "applied": self.applied, "lifted": self.lifted,
                "error": self.error}


async def retry_parked(engine: AsyncEngine, aggregate_id: str, projection: str = "main") -> RetryOutcome:
    """Fold an aggregate's parked events (once the code that failed on them is fixed) onto
    its stored state and lift its quarantine. Load and fold first (the fold in a worker
    thread), then one write transaction that commits only if nothing was parked meanwhile
    (else it starts over). If the fold or the store fails again, nothing changes but the
    recorded error. For operators: `runledger quarantine retry`, the admin endpoint."""
    for _ in range(5):
        outcome = await _retry_once(engine, aggregate_id, projection)
        if outcome is not None:
            return outcome
    return RetryOutcome(aggregate_id, error="events kept being parked meanwhile; try again")


async def _retry_once(engine: AsyncEngine, aggregate_id: str, projection: str) -> RetryOutcome | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(quarantined).where(
            quarantined.c.projection == projection, quarantined.c.aggregate_id == aggregate_id))).first()
        if row is None:
            return RetryOutcome(aggregate_id, error="not quarantined")
        records = await parked_records(conn, projection, aggregate_id)
        retry = batch_module.Batch(projection, records)
        retry.decode_all()
        await batch_module.load(conn, retry, honour_quarantine=False)
    await asyncio.to_thread(retry.fold)
    outcome = RetryOutcome(aggregate_id)
    async with engine.begin() as conn:
        unchanged = await conn.execute(update(quarantined).where(
            quarantine_key(projection, row.kind, aggregate_id), quarantined.c.parked == row.parked).values(parked=row.parked))
        if unchanged.rowcount != 1:
            return None  # parked meanwhile: start over
        if not retry.failures:
            await batch_module.save(conn, retry, isolate=True, park=False)
        if retry.failures:
            outcome.error = next(iter(retry.failures.values()))
            await conn.execute(update(quarantined).where(quarantine_key(projection, row.kind, aggregate_id))
                               .values(error=outcome.error[:4000]))
            return outcome
        await conn.execute(delete(parked_events).where(parked_events.c.projection == projection,
                                                       parked_events.c.aggregate_id == aggregate_id))
        await conn.execute(delete(quarantined).where(quarantine_key(projection, row.kind, aggregate_id)))
    changes.published(retry.changed)  # committed
    outcome.applied, outcome.lifted = len(records), True
    return outcome
