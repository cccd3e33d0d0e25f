"""Quarantine the run, not the partition (DESIGN §5).

When the fold or the store raises deterministically on a valid event, the projector
quarantines that aggregate (a run, an experiment, a block) with the error, and parks its
events (this batch's and every later one) here instead of applying them; the other runs
of the partition go on. After the fix ships, `retry_parked` folds the parked events onto
the stored state in one transaction and lifts the quarantine.

The quarantine row is the guard between the projector and a retry running elsewhere:
parking bumps its `parked` count (a retry that lifted it meanwhile makes that bump miss,
and the projector's batch is retried: `QuarantineLifted`), and a retry commits only if
that count is still the one it folded.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from events.log import Record
from projections.store.tables import parked_events, quarantined

Key = tuple[str, str]


class QuarantineLifted(RuntimeError):
    """A retry lifted a quarantine this batch meant to park under: load and fold again."""

    transient = True  # retried like a transient fault (projections.runtime.transient)


async def which(conn: AsyncConnection, projection: str, keys: set[Key]) -> set[Key]:
    """The quarantined ones among `keys`."""
    if not keys:
        return set()
    ids = {agg_id for _, agg_id in keys}
    query = select(quarantined.c.kind, quarantined.c.aggregate_id).where(
        quarantined.c.projection == projection, quarantined.c.aggregate_id.in_(ids))
    return {(kind, agg_id) for kind, agg_id in (await conn.execute(query)).all()} & keys


async def park(conn: AsyncConnection, projection: str, parked: dict[Key, list[Record]],
               failures: dict[Key, str], events) -> None:
    """Inside the batch's transaction: quarantine the new failures, park every set-aside event."""
    org_of = {(e.aggregate_id): e.org_id for _, e, _ in events if e is not None}
    for (kind, agg_id), records in parked.items():
        if not records:
            continue
        if (kind, agg_id) in failures:
            partition, offset = records[0].partition, _failed_offset(failures[(kind, agg_id)], records)
            failed = next((r for r in records if r.offset == offset), records[0])
            await conn.execute(insert(quarantined).values(
                projection=projection, kind=kind, aggregate_id=agg_id, org_id=org_of.get(agg_id, ""),
                partition=partition, offset=offset, error=failures[(kind, agg_id)][:4000],
                parked=len(records), quarantined_at=_appended(failed)))
        else:
            bumped = await conn.execute(update(quarantined).where(quarantine_key(projection, kind, agg_id)).values(
                parked=quarantined.c.parked + len(records)))
            if bumped.rowcount != 1:
                raise QuarantineLifted(f"{kind} {agg_id}: quarantine lifted while a batch parked its events")
        await conn.execute(insert(parked_events), [dict(
            projection=projection, partition=r.partition, offset=r.offset, kind=kind, aggregate_id=agg_id,
            key=r.key, value=r.value, timestamp_ms=r.timestamp_ms) for r in records])


def _appended(record: Record) -> datetime:
    """The failing record's append time: a replay quarantines at the same instant."""
    if record.timestamp_ms and record.timestamp_ms > 0:
        return datetime.fromtimestamp(record.timestamp_ms / 1000, timezone.utc)
    return datetime(1970, 1, 1, tzinfo=timezone.utc)


def _failed_offset(failure: str, records: list[Record]) -> int:
    head = failure.split(":", 1)[0]
    return int(head.split()[-1]) if head.startswith("offset ") else records[0].offset


def quarantine_key(projection: str, kind: str, agg_id: str):
    return and_(quarantined.c.projection == projection, quarantined.c.kind == kind,
                quarantined.c.aggregate_id == agg_id)


@dataclass
class Quarantined:
    projection: str
    kind: str
    aggregate_id: str
    org_id: str
    partition: int
    offset: int
    error: str
    parked: int
    quarantined_at: datetime

    def as_json(self, detailed: bool = True) -> dict[str, Any]:
        data = {"projection": self.projection, "kind": self.kind, "aggregate_id": self.aggregate_id,
                "partition": self.partition, "offset": self.offset, "parked": self.parked,
                "quarantined_at": self.quarantined_at.isoformat()}
        return {**data, "org_id": self.org_id, "error": self.error} if detailed else data


async def list_quarantined(conn: AsyncConnection, org_id: str | None = None) -> list[Quarantined]:
    query = select(quarantined).order_by(quarantined.c.partition, quarantined.c.offset)
    if org_id is not None:
        query = query.where(quarantined.c.org_id == org_id)
    return [Quarantined(**row._mapping) for row in (await conn.execute(query)).all()]


async def count(conn: AsyncConnection) -> int:
    return await conn.scalar(select(func.count()).select_from(quarantined)) or 0


async def parked_records(conn: AsyncConnection, projection: str, aggregate_id: str) -> list[Record]:
    query = (select(parked_events).where(parked_events.c.projection == projection,
                                         parked_events.c.aggregate_id == aggregate_id)
             .order_by(parked_events.c.partition, parked_events.c.offset))
    return [Record(r.partition, r.offset, r.key or "", bytes(r.value), r.timestamp_ms)
            for r in (await conn.execute(query)).all()]
