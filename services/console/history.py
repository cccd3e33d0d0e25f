"""A run's timeline, a page at a time, and the events that carried a document's passes.

A page is one keyset page of the run's event index (projections/store/history.py: filters
in SQL, fitted to PAGE_BYTES), its rejected events' bodies read from the log in one range
read. The counters before -> after each event are the ones the projector stored beside
its row (`event_index.counters`: what the run was after it), the "before" being the row
just before it in the run's history: nothing is folded to show a page, whatever the
history's length. Rows indexed before migration 0012 have no counters (shown as such).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from events.envelope import trace_id
from events.log import Position, partition_for
from projections.domain.fold import AGGREGATE_KIND
from projections.domain.state import RunState
from projections.runtime.event_bodies import read_from_log
from projections.store import history
from projections.store.pagination import MAX_OFFSET, Page, PageRequest

from ..api.context import Ctx
from ..api.errors import invalid
from ..fairness import breathe

PAGE = 50
PAGE_BYTES = 1_000_000  # a page's events, as stored; its HTML adds about as much again
TYPES = sorted(kind for kind, aggregate in AGGREGATE_KIND.items() if aggregate == "run")  # the type filter


@dataclass(frozen=True)
class Counters:
    status: str
    done: int
    failed: int
    total: int
    passes: int
    planned_passes: int

    def text(self) -> str:
        return f"{self.status} · {self.done}/{self.total} done · {self.failed} failed · {self.passes}/{self.planned_passes} passes"


@dataclass(frozen=True)
class Entry:
    index: int | None  # the event's place in the run's history, from 0 (None: indexed before 0012)
    position: str
    offset: int
    event_id: str
    type: str
    occurred_at: Any
    producer: str
    accepted: bool
    reason: str | None
    payload: dict[str, Any]
    before: Counters | None
    after: Counters | None
    trace_id: str | None = None  # the W3C trace the event was produced in (docs/operations.md)
    deliveries: int = 1  # how often an accepted event reached the log


@dataclass(frozen=True)
class Timeline:
    entries: list[Entry]
    page: Page  # its cursors (offsets)
    total: int | None  # events in the run's history (None: indexed before 0012)


def counters(run: RunState, stored: list | None) -> Counters | None:
    if stored is None:
        return None
    status, done, failed, passes = stored
    return Counters(status, done, failed, run.total_document_count, passes, run.n_consensus * run.total_document_count)


async def timeline(ctx: Ctx, run: RunState, page: PageRequest, only: history.HistoryFilter) -> Timeline:
    partition = partition_for(run.run_id, ctx.runtime.log.partitions)
    async with ctx.connect() as conn:
        found = await history.history_page(conn, run.run_id, partition, page, only, PAGE_BYTES)
        stored = await history.bodies(conn, partition, found.rows)
        seqs = {row.seq for row in found.rows if row.seq is not None}
        earlier = await history.rows_at(conn, run.run_id, {s - 1 for s in seqs if s > 0} - seqs)
        head = await history.head(conn, run.run_id)
    logged = await read_from_log(ctx.runtime.log, partition, [row for row in found.rows if not row.accepted])
    after = {row.seq: row.counters for row in found.rows if row.seq is not None}
    after.update({seq: row.counters for seq, row in earlier.items()})
    entries = []
    for row in found.rows:
        await breathe()
        entries.append(_entry(run, row, stored.get(row.offset) or logged[row.offset], after))
    return Timeline(entries, found, head.next_seq if head else None)


def _entry(run: RunState, row, body: dict[str, Any] | None, after: dict[int, list]) -> Entry:
    body = body or {}
    before = after.get(row.seq - 1) if row.seq else None
    return Entry(row.seq, Position(row.partition, row.offset).token(), row.offset, row.event_id, row.type,
                 row.occurred_at, row.producer, bool(row.accepted), row.reason, body.get("payload", {}),
                 counters(run, before), counters(run, row.counters), trace_id(body.get("trace")),
                 row.deliveries or 1)


async def entry_at(ctx: Ctx, run: RunState, index: int) -> Entry | None:
    """The event at `index` in the run's history (no payload), for the as-of panel."""
    async with ctx.connect() as conn:
        found = await history.rows_at(conn, run.run_id, {index, index - 1} if index else {index})
    row = found.get(index)
    if row is None:
        return None
    previous = found.get(index - 1)
    return _entry(run, row, None, {index: row.counters, index - 1: previous.counters if previous else None})


def jump_offset(text: str, run_id: str, partitions: int) -> int:
    """The offset a "jump to" names: a position 'p:o' (in the run's partition) or an offset."""
    text = text.strip()
    try:
        if ":" in text:
            position = Position.parse(text)
            if position.partition != partition_for(run_id, partitions):
                raise invalid(f"{text} is not in this run's partition", field="at")
            offset = position.offset
        else:
            offset = int(text)
    except ValueError:
        raise invalid("jump to a position '<partition>:<offset>' or an offset", field="at") from None
    if not 0 <= offset <= MAX_OFFSET:
        raise invalid(f"offsets are 0..{MAX_OFFSET}", field="at")
    return offset
