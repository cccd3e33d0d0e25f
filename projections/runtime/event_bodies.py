"""The event index keeps an accepted event's body but not a rejected one's (a hostile
tenant's rejected events would otherwise be stored twice: log and index). A reader that
needs a rejected event's body reads it back from the log at the indexed position, timed
as the fold timed it (the row's `occurred_at`), so it is the body the index would have held.

A page's rejected bodies come from range reads of the log, not one read per record: a
run's events are keyed by its id, so they sit together in one partition, and the page's
rejected offsets are read a stretch at a time (`events.log.read_at`: a new read only past
a gap, so a read never crosses much of other runs' traffic)."""
from __future__ import annotations

from typing import Any

from events.codec import decode
from events.log import EventLog, Record, read_at


def _body(record: Record, row: Any) -> dict[str, Any]:
    event = decode(record.value)
    if event.occurred_at != row.occurred_at:  # the fold moved its stamp (projections/domain/clock.py)
        event = event.model_copy(update={"occurred_at": row.occurred_at})
    return event.model_dump(mode="json")


async def read_from_log(log: EventLog, partition: int, rows: list[Any]) -> dict[int, dict[str, Any]]:
    """The bodies of the indexed `rows` (their `offset` and `occurred_at`) of `partition`,
    read from the log, by offset."""
    found = await read_at(log, partition, [row.offset for row in rows])
    missing = next((row.offset for row in rows if row.offset not in found), None)
    if missing is not None:
        raise LookupError(f"event {partition}:{missing} is indexed but not in the log")
    return {row.offset: _body(found[row.offset], row) for row in rows}


async def body_of(log: EventLog, row: Any) -> dict[str, Any]:
    """The event's JSON body: from the index row if it kept one, else from the log."""
    if row.body is not None:
        return row.body
    return (await read_from_log(log, row.partition, [row]))[row.offset]


async def with_bodies(log: EventLog, rows: list[Any]) -> list[tuple[Any, dict[str, Any]]]:
    """Each row paired with its body (rejected ones read from the log, a stretch at a time)."""
    by_partition: dict[int, list[Any]] = {}
    for row in rows:
        if row.body is None:
            by_partition.setdefault(row.partition, []).append(row)
    read = {}
    for partition, wanted in by_partition.items():
        for offset, body in (await read_from_log(log, partition, wanted)).items():
            read[(partition, offset)] = body
    return [(row, row.body if row.body is not None else read[(row.partition, row.offset)]) for row in rows]
