"""A run's timeline: every event with the counters before and after it.

The counters come from folding the run's own events once, in log order, through the
same fold the projector runs (lifecycle only: `no_scores`, so no consensus is
computed). Cost: linear in the run's events, run off the event loop."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from events.codec import from_dict
from events.envelope import trace_id
from events.log import Position
from projections.domain.fold import apply, no_scores
from projections.runtime.event_bodies import with_bodies
from projections.store import views
from projections.store.pagination import PageRequest

from ..api.context import Ctx

PAGE = 1000
PASS_EVENTS = ("DocumentPassCompleted", "DocumentPassFailed")


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
    index: int
    position: str
    offset: int
    event_id: str
    type: str
    occurred_at: str
    producer: str
    accepted: bool
    reason: str | None
    payload: dict[str, Any]
    before: Counters | None
    after: Counters | None
    trace_id: str | None = None  # the W3C trace the event was produced in (docs/operations.md)


def counters(state) -> Counters | None:
    if state is None:
        return None
    passes = sum(len(doc.passes) for doc in state.documents.values())
    return Counters(state.status, state.completed_document_count, state.error_count, state.total_document_count,
                    passes, state.n_consensus * state.total_document_count)


async def event_rows(ctx: Ctx, run_id: str) -> list[tuple[Any, dict[str, Any]]]:
    """Every indexed event of the run with its body, in log order (paged through
    views.run_history; a rejected event's body is read from the log)."""
    rows, after = [], None
    async with ctx.connect() as conn:
        while True:
            page = await views.run_history(conn, run_id, PageRequest(PAGE, "asc", None, after))
            rows += page.rows
            if page.after is None:
                break
            after = page.after
    return await with_bodies(ctx.runtime.log, rows)


def fold_timeline(rows: list[tuple[Any, dict[str, Any]]]) -> list[Entry]:
    entries, state = [], None
    for index, (row, body) in enumerate(rows):
        before = counters(state)
        if row.accepted:
            state = apply(state, from_dict(body), no_scores).state
        entries.append(Entry(index, Position(row.partition, row.offset).token(), row.offset, body["event_id"],
                             body["type"], body["occurred_at"], body["producer"], bool(row.accepted), row.reason,
                             body["payload"], before, counters(state), trace_id(body.get("trace"))))
    return entries


async def timeline(ctx: Ctx, run_id: str) -> list[Entry]:
    return await asyncio.to_thread(fold_timeline, await event_rows(ctx, run_id))


def pass_events(entries: list[Entry], document_id: str) -> dict[int, Entry]:
    """The accepted event that carried each pass of a document (the last one, after retries)."""
    found: dict[int, Entry] = {}
    for entry in entries:
        if entry.accepted and entry.type in PASS_EVENTS and entry.payload.get("document_id") == document_id:
            found[int(entry.payload["pass_index"])] = entry
    return found
