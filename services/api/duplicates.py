"""Duplicates cost nothing (issue 17): an event a producer reports again is answered at the
door with where it already is, and not appended again.

An event is a duplicate when an event of the same run, id and type was accepted already (the
event index says so: one indexed SELECT per request), or appears earlier in the same request.
One that is on the log but not projected yet is appended again; the projector then counts it
on its event's row instead of folding it (projections/runtime/history_index.py).
"""
from __future__ import annotations

from events.envelope import Event
from events.log import Position
from projections.store import history

from .context import Ctx


async def known_positions(ctx: Ctx, events: list[Event]) -> dict[int, Position | int]:
    """For each duplicate in `events` (by index): its accepted position, or the index of
    the earlier event of this request it repeats."""
    keys = [(e.aggregate_id, str(e.event_id), e.type) for e in events]
    async with ctx.connect() as conn:
        accepted = await history.accepted_positions(conn, keys)
    known: dict[int, Position | int] = {}
    first: dict[tuple, int] = {}
    for i, key in enumerate(keys):
        if key in accepted:
            known[i] = Position(*accepted[key])
        elif key in first:
            known[i] = first[key]
        else:
            first[key] = i
    return known
