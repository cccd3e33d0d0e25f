"""A run as it was at a log position, a moment, or a place in its history: the nearest
snapshot at or before it, and the run's own accepted events after it folded on
(projections/domain/snapshots.py). Cost: a handful of indexed reads and at most
SNAPSHOT_EVERY events folded (in a worker thread), whatever the length of the history.

A run indexed before migration 0012 has no snapshots: it is refolded from its first event
up to the point, as it always was (`_legacy`), until a rebuild fills its history.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timezone

import orjson

from events.codec import from_dict
from events.log import Position, partition_for
from projections.domain.fold import apply
from projections.domain.snapshots import SNAPSHOT_EVERY, Tail, restore
from projections.domain.state import DocumentState, RunState
from projections.store import history, views
from projections.store.pagination import MAX_OFFSET

from .context import Ctx
from .errors import ApiError, invalid
from .resources import run_resource


@dataclass(frozen=True)
class Then:
    state: RunState | None
    events: int  # rows of the run's history up to the point (accepted and rejected)


Point = Position | datetime | int  # an int: a place in the run's history (`seq`, from 0)


async def run_then(ctx: Ctx, current: RunState, point: Point) -> Then:
    async with ctx.connect() as conn:
        found = await history.head(conn, current.run_id)
        if found is None or found.next_seq is None:
            return await _legacy(conn, current, point)
        if isinstance(point, datetime):
            snapshot, rows = await _until_time(conn, current.run_id, point)
        else:
            seq = point if isinstance(point, int) else await _seq_at(conn, current.run_id, point)
            if seq is None:
                return Then(None, 0)
            snapshot = await history.snapshot_at_or_before(conn, current.run_id, seq)
            rows = await history.rows_after(conn, current.run_id, snapshot.seq if snapshot else -1, seq)
        start = snapshot.seq if snapshot else -1
        touched = {row.document_id for row in rows if row.accepted and row.document_id is not None}
        facts = await history.facts(conn, current.run_id, touched, start)
        scores = await history.stored_scores(conn, current.run_id, touched)
    bodies = [row.body for row in rows if row.accepted]
    tail = await asyncio.to_thread(_fold, snapshot.state if snapshot else None, current, facts, scores, bodies)
    return Then(tail.state, (rows[-1].seq if rows else start) + 1)


def _fold(snapshot: dict | None, current: RunState, facts, scores, bodies: list[dict]) -> Tail:
    tail = Tail(*restore(snapshot, current.run_id, current.org_id, current.spec, facts), scores)
    for body in bodies:
        tail.apply(from_dict(body))
    return tail


async def _seq_at(conn, run_id: str, point: Position) -> int | None:
    row = await history.row_at_or_before(conn, run_id, point.partition, point.offset)
    return row.seq if row is not None else None


async def _until_time(conn, run_id: str, moment: datetime):
    """The snapshot all of whose events are at or before `moment`, and the rows after it up
    to the first one timed later: within SNAPSHOT_EVERY rows, since the next snapshot's
    events are not all that early (`high_water` only grows); looked for in pieces of that
    size all the same, in case the cadence changed since the snapshots were written."""
    snapshot = await history.snapshot_before_time(conn, run_id, moment)
    start = snapshot.seq if snapshot else -1
    end = start
    while True:
        later = await history.first_later(conn, run_id, end, end + SNAPSHOT_EVERY, moment)
        if later is not None:
            return snapshot, await history.rows_after(conn, run_id, start, later - 1)
        found = await history.head(conn, run_id)
        if end + SNAPSHOT_EVERY >= found.next_seq - 1:
            return snapshot, await history.rows_after(conn, run_id, start, found.next_seq - 1)
        end += SNAPSHOT_EVERY


def parse_as_of(as_of: str) -> Position | datetime:
    if ":" in as_of and as_of.split(":", 1)[0].isdigit():
        try:
            position = Position.parse(as_of)
        except ValueError as exc:
            raise invalid(str(exc)) from None
        if position.offset > MAX_OFFSET:
            raise invalid(f"offsets are at most {MAX_OFFSET}")
        return position
    try:
        moment = datetime.fromisoformat(as_of.replace("Z", "+00:00"))
    except ValueError:
        raise invalid("as_of must be a position '<partition>:<offset>' or an ISO-8601 time") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc)  # it is compared in the store, in UTC
    except OverflowError:  # beyond year 1 or 9999 in UTC: before or after everything
        return (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=timezone.utc)


async def run_as_of(ctx: Ctx, current: RunState, as_of: str) -> dict:
    point = parse_as_of(as_of)
    if isinstance(point, Position):
        partition = partition_for(current.run_id, ctx.runtime.log.partitions)
        if point.partition != partition:
            raise invalid(f"run {current.run_id} lives in partition {partition}; {as_of} is in another one",
                          partition=partition)
    then = await run_then(ctx, current, point)
    if then.state is None:
        raise ApiError(404, "run_not_found", f"run {current.run_id!r} did not exist as of {as_of}",
                       {"as_of": as_of})
    return {**run_resource(then.state), "as_of": as_of, "as_of_event_count": then.events}


# -- runs indexed before migration 0012 -------------------------------------------------

async def _legacy(conn, current: RunState, point: Point) -> Then:
    """The whole refold: every event of the run up to the point, scored from the documents'
    stored results (matched by their votes), in a worker thread."""
    until = point.offset if isinstance(point, Position) else None
    events = await views.run_events_until(conn, current.run_id, until)
    if isinstance(point, int):
        events = events[: point + 1]
    scorer = stored_results(await views.run_documents_of(conn, current.run_id))
    state, applied = await asyncio.to_thread(_refold, events, point, scorer)
    return Then(state, applied)


def stored_results(documents: list[DocumentState]):
    """A scorer that answers from the documents' stored results instead of running the
    consensus engine: a document's consensus never changes once it finished, and its
    votes identify it."""
    results = {_votes_key([_vote(doc.passes.get(i)) for i in range(len(doc.passes))]): (doc.score, doc.consensus)
               for doc in documents if doc.status == "completed"}

    def score(spec, votes):
        return results.get(_votes_key(votes), (None, None))

    return score


def _vote(fact):
    return fact.output if fact is not None and fact.status == "completed" else None


def _votes_key(votes: list) -> bytes:
    return orjson.dumps(votes, option=orjson.OPT_SORT_KEYS)


def _refold(events: list, point: Point, scorer) -> tuple[RunState | None, int]:
    """A rejected event is counted but not applied: it never changed the state."""
    state, applied = None, 0
    for row in events:
        if isinstance(point, datetime) and row.occurred_at > point:
            break
        if row.accepted:
            state = apply(state, from_dict(row.body), scorer).state
        applied += 1
    return state, applied
