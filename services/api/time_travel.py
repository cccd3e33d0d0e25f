"""A run as it was at a log position or a moment: replay its own events through the fold."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import orjson

from events.codec import from_dict
from events.log import Position, partition_for
from projections.domain.fold import apply
from projections.domain.state import DocumentState, RunState
from projections.store import views

from .context import Ctx
from .errors import ApiError, invalid
from .resources import run_resource


def stored_results(documents: list[DocumentState]):
    """A scorer that answers from the documents' stored results instead of running the
    consensus engine: a document's consensus never changes once it finished, and its
    votes identify it. So `as_of` costs one lifecycle fold, never a rescoring."""
    results = {_votes_key([_vote(doc.passes.get(i)) for i in range(len(doc.passes))]): (doc.score, doc.consensus)
               for doc in documents if doc.status == "completed"}

    def score(spec, votes):
        return results.get(_votes_key(votes), (None, None))

    return score


def _vote(fact):
    return fact.output if fact is not None and fact.status == "completed" else None


def _votes_key(votes: list) -> bytes:
    return orjson.dumps(votes, option=orjson.OPT_SORT_KEYS)


def _refold(events: list, point: Position | datetime, scorer) -> tuple[RunState | None, int]:
    """In a worker thread: CPU work stays off the event loop. A rejected event is counted
    but not applied: it never changed the state (and the index keeps no body for it)."""
    state, applied = None, 0
    for row in events:
        if isinstance(point, datetime) and row.occurred_at > point:
            break
        if row.accepted:
            state = apply(state, from_dict(row.body), scorer).state
        applied += 1
    return state, applied


def parse_as_of(as_of: str) -> Position | datetime:
    if ":" in as_of and as_of.split(":", 1)[0].isdigit():
        try:
            return Position.parse(as_of)
        except ValueError as exc:
            raise invalid(str(exc)) from None
    try:
        moment = datetime.fromisoformat(as_of.replace("Z", "+00:00"))
    except ValueError:
        raise invalid("as_of must be a position '<partition>:<offset>' or an ISO-8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


async def run_as_of(ctx: Ctx, current: RunState, as_of: str) -> dict:
    point = parse_as_of(as_of)
    until = point.offset if isinstance(point, Position) else None
    if isinstance(point, Position):
        partition = partition_for(current.run_id, ctx.runtime.log.partitions)
        if point.partition != partition:
            raise invalid(f"run {current.run_id} lives in partition {partition}; {as_of} is in another one",
                          partition=partition)
    async with ctx.connect() as conn:
        events = await views.run_events_until(conn, current.run_id, until)
        scorer = stored_results(await views.run_documents_of(conn, current.run_id))
    state, applied = await asyncio.to_thread(_refold, events, point, scorer)
    if state is None:
        raise ApiError(404, "run_not_found", f"run {current.run_id!r} did not exist as of {as_of}",
                       {"as_of": as_of})
    return {**run_resource(state), "as_of": as_of, "as_of_event_count": applied}
