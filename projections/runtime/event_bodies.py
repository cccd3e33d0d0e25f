"""The event index keeps an accepted event's body but not a rejected one's (a hostile
tenant's rejected events would otherwise be stored twice: log and index). A reader that
needs a rejected event's body reads it back from the log at the indexed position, timed
as the fold timed it (the row's `occurred_at`), so it is the body the index would have held."""
from __future__ import annotations

from typing import Any

from events.codec import decode
from events.log import EventLog


async def body_of(log: EventLog, row: Any) -> dict[str, Any]:
    """The event's JSON body: from the index row if it kept one, else from the log."""
    if row.body is not None:
        return row.body
    records = await log.read(row.partition, row.offset, 1)
    if not records or records[0].offset != row.offset:
        raise LookupError(f"event {row.partition}:{row.offset} is indexed but not in the log")
    event = decode(records[0].value)
    if event.occurred_at != row.occurred_at:  # the fold moved its stamp (projections/domain/clock.py)
        event = event.model_copy(update={"occurred_at": row.occurred_at})
    return event.model_dump(mode="json")


async def with_bodies(log: EventLog, rows: list[Any]) -> list[tuple[Any, dict[str, Any]]]:
    """Each row paired with its body (rejected ones read from the log)."""
    return [(row, await body_of(log, row)) for row in rows]
