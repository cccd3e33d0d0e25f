"""Reads of a run's history that cost a page, never the history (issue 17).

Every query here is an indexed range of one run's event index (`aggregate_id` plus the
run's partition, its type or outcome, or its `seq`), of its snapshots or of its pass facts,
and reads at most a page, or at most SNAPSHOT_EVERY rows: nothing grows with the history.
A run's events share one partition (keyed by run id), so the offset orders them, as does
`seq` (its place in the run's history, projections/runtime/history_index.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.domain.snapshots import Fact
from projections.store.pagination import Page, PageRequest
from projections.store.tables import event_index, history_heads, run_documents, run_snapshots

ITEM_OVERHEAD = 512
"""Bytes an item of a history page adds to its event's own (position, outcome, reason's
share, separators): what `items_within_bytes` adds to each stored size."""
LEGACY_SIZE = 4096  # a row indexed before migration 0012 has no stored size: assumed, checked once rendered

_META = (event_index.c.partition, event_index.c.offset, event_index.c.offset.label("id_"), event_index.c.seq, event_index.c.event_id,
         event_index.c.type, event_index.c.occurred_at, event_index.c.producer, event_index.c.accepted,
         event_index.c.reason, event_index.c.size, event_index.c.document_id, event_index.c.pass_fact,
         event_index.c.counters,
         event_index.c.deliveries, event_index.c.last_offset)


@dataclass(frozen=True)
class HistoryFilter:
    type: str | None = None
    accepted: bool | None = None  # True: accepted only; False: rejected only


def items_within_bytes(sizes: Sequence[int | None], budget: int, overhead: int = ITEM_OVERHEAD) -> int:
    """How many of the first items fit in `budget` bytes (each its size plus `overhead`; an
    unknown size counts as LEGACY_SIZE); always at least one, so a page makes progress."""
    total = 0
    for count, size in enumerate(sizes):
        total += (LEGACY_SIZE if size is None else size) + overhead
        if total > budget and count:
            return count
    return len(sizes)


async def history_page(conn: AsyncConnection, run_id: str, partition: int, page: PageRequest,
                       only: HistoryFilter = HistoryFilter(), budget: int | None = None) -> Page:
    """One page of the run's history: rows without their bodies (`bodies` reads those),
    keyset-paged by offset both ways (`after` / `before` hold offsets), the filter applied
    in SQL, and shrunk to `budget` bytes by the rows' stored sizes (the cursor continues)."""
    forward = page.before is None
    cursor = page.after if forward else page.before
    descending = (page.order == "desc") == forward
    query = select(*_META).where(event_index.c.aggregate_id == run_id, event_index.c.partition == partition)
    if only.type is not None:
        query = query.where(event_index.c.type == only.type)
    if only.accepted is not None:
        query = query.where(event_index.c.accepted.is_(only.accepted))
    if cursor is not None:
        query = query.where(event_index.c.offset < cursor if descending else event_index.c.offset > cursor)
    order = event_index.c.offset.desc() if descending else event_index.c.offset.asc()
    rows = list((await conn.execute(query.order_by(order).limit(page.limit + 1))).all())
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    if budget is not None:
        fits = items_within_bytes([row.size for row in rows], budget)
        more, rows = more or fits < len(rows), rows[:fits]
    return keyset_page(rows, forward, cursor is not None, more)


def keyset_page(rows: list, forward: bool, had_cursor: bool, more: bool) -> Page:
    """`rows` in fetch order (away from the cursor) as a page in reading order, with its
    cursors (offsets): `after` when more follow, `before` when earlier ones exist."""
    if not forward:
        rows = rows[::-1]
    if not rows:
        return Page(rows, None, None)
    first, last = rows[0].offset, rows[-1].offset
    if forward:
        return Page(rows, first if had_cursor else None, last if more else None)
    return Page(rows, first if more else None, last)


async def bodies(conn: AsyncConnection, partition: int, rows: Iterable[Any]) -> dict[int, dict[str, Any]]:
    """The stored bodies of the page's accepted rows, by offset (one SELECT by primary key)."""
    offsets = [row.offset for row in rows if row.accepted]
    if not offsets:
        return {}
    query = select(event_index.c.offset, event_index.c.body).where(
        event_index.c.partition == partition, event_index.c.offset.in_(offsets))
    return {offset: body for offset, body in (await conn.execute(query)).all()}


@dataclass(frozen=True)
class Head:
    next_seq: int | None  # None: indexed before migration 0012 (untracked)
    pass_facts: int


async def head(conn: AsyncConnection, aggregate_id: str) -> Head | None:
    """The run's history figures; None when nothing of it was indexed since migration 0012."""
    query = select(history_heads.c.next_seq, history_heads.c.pass_facts).where(
        history_heads.c.aggregate_id == aggregate_id)
    row = (await conn.execute(query)).first()
    return Head(row.next_seq, row.pass_facts) if row else None


async def row_at_or_before(conn: AsyncConnection, run_id: str, partition: int, offset: int):
    """The run's last row at or before `offset` (its `seq` and position), or None."""
    query = select(*_META).where(
        event_index.c.aggregate_id == run_id, event_index.c.partition == partition, event_index.c.offset <= offset,
    ).order_by(event_index.c.offset.desc()).limit(1)
    return (await conn.execute(query)).first()


async def rows_at(conn: AsyncConnection, run_id: str, seqs: Iterable[int]) -> dict[int, Any]:
    """The run's rows at these places in its history (no bodies), by seq."""
    wanted = sorted(set(seqs))
    if not wanted:
        return {}
    query = select(*_META).where(event_index.c.aggregate_id == run_id, event_index.c.seq.in_(wanted))
    return {row.seq: row for row in (await conn.execute(query)).all()}


@dataclass(frozen=True)
class Snapshot:
    seq: int
    offset: int
    state: dict[str, Any] | None


_SNAPSHOT = (run_snapshots.c.seq, run_snapshots.c.offset, run_snapshots.c.state)


async def snapshot_at_or_before(conn: AsyncConnection, run_id: str, seq: int) -> Snapshot | None:
    query = select(*_SNAPSHOT).where(run_snapshots.c.run_id == run_id, run_snapshots.c.seq <= seq).order_by(
        run_snapshots.c.seq.desc()).limit(1)
    row = (await conn.execute(query)).first()
    return Snapshot(*row) if row else None


async def snapshot_before_time(conn: AsyncConnection, run_id: str, moment: datetime) -> Snapshot | None:
    """The latest snapshot all of whose events happened at or before `moment` (`high_water`
    only grows with `seq`, so this is also the one of highest seq)."""
    query = select(*_SNAPSHOT).where(run_snapshots.c.run_id == run_id, run_snapshots.c.high_water <= moment).order_by(
        run_snapshots.c.high_water.desc(), run_snapshots.c.seq.desc()).limit(1)
    row = (await conn.execute(query)).first()
    return Snapshot(*row) if row else None


async def rows_after(conn: AsyncConnection, run_id: str, after_seq: int, through_seq: int) -> list[Any]:
    """The run's rows with after_seq < seq <= through_seq, in order, with their bodies
    (NULL for a rejected one: it never changed the state). Callers keep the span within
    SNAPSHOT_EVERY."""
    query = select(event_index.c.seq, event_index.c.partition, event_index.c.offset, event_index.c.occurred_at,
                   event_index.c.accepted, event_index.c.document_id, event_index.c.body).where(
        event_index.c.aggregate_id == run_id, event_index.c.seq > after_seq, event_index.c.seq <= through_seq,
    ).order_by(event_index.c.seq)
    return list((await conn.execute(query)).all())


async def first_later(conn: AsyncConnection, run_id: str, after_seq: int, through_seq: int,
                      moment: datetime) -> int | None:
    """The first place in (after_seq, through_seq] of an event timed after `moment`, if any
    (one row back, whatever the span)."""
    query = select(func.min(event_index.c.seq)).where(
        event_index.c.aggregate_id == run_id, event_index.c.seq > after_seq, event_index.c.seq <= through_seq,
        event_index.c.occurred_at > moment)
    return (await conn.execute(query)).scalar()


async def facts(conn: AsyncConnection, run_id: str, document_ids: Iterable[str],
                through_seq: int) -> dict[str, list[Fact]]:
    """Each document's pass facts up to `through_seq` (at most n_consensus each); every
    asked document is a key, with no facts yet an empty list."""
    found: dict[str, list[Fact]] = {doc: [] for doc in document_ids}
    if not found or through_seq < 0:
        return found
    query = select(event_index.c.document_id, event_index.c.pass_fact, event_index.c.type,
                   event_index.c.occurred_at).where(
        event_index.c.aggregate_id == run_id, event_index.c.document_id.in_(found),
        event_index.c.pass_fact.isnot(None), event_index.c.seq <= through_seq)
    for doc, pass_index, kind, occurred_at in (await conn.execute(query)).all():
        found[doc].append(Fact(pass_index, kind == "DocumentPassCompleted", occurred_at))
    return found


async def stored_scores(conn: AsyncConnection, run_id: str, document_ids: Iterable[str]) -> dict[str, float | None]:
    """The documents' final scores as stored (their columns: no state decoded)."""
    wanted = list(document_ids)
    if not wanted:
        return {}
    query = select(run_documents.c.document_id, run_documents.c.score).where(
        run_documents.c.run_id == run_id, run_documents.c.document_id.in_(wanted))
    return {doc: score for doc, score in (await conn.execute(query)).all()}


async def accepted_positions(conn: AsyncConnection, keys: Iterable[tuple[str, str, str]]) -> dict[tuple, Any]:
    """Where each (aggregate id, event id, type) was accepted, if it was: (partition, offset).
    One SELECT on the event id index."""
    keys = set(keys)
    if not keys:
        return {}
    query = select(event_index.c.aggregate_id, event_index.c.event_id, event_index.c.type, event_index.c.partition,
                   event_index.c.offset).where(event_index.c.event_id.in_({k[1] for k in keys}),
                                               event_index.c.accepted.is_(True))
    found = {}
    for aggregate_id, event_id, kind, partition, offset in (await conn.execute(query)).all():
        if (aggregate_id, event_id, kind) in keys:
            found[(aggregate_id, event_id, kind)] = (partition, offset)
    return found
