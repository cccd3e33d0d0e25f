"""The event index keeps an accepted event's body but not a rejected one's (a hostile
tenant's rejected events would otherwise be stored twice: log and index). A reader that
needs a rejected event's body reads it back from the log at the indexed position, timed
as the fold timed it, so it is the body the index would have held.

A page's rejected bodies come from range reads of the log, not one read per record: a
run's events are keyed by its id, so they sit together in one partition, and the page's
rejected offsets are read as one range (a new range only past a gap of more than MAX_GAP
records, so a read never crosses much of other runs' traffic)."""
from __future__ import annotations

from typing import Any, Iterable

from events.codec import decode
from events.log import EventLog, Record
from projections.domain import clock

MAX_GAP = 100
"""Records of other aggregates a range read may step over between two wanted ones."""


def _body(record: Record) -> dict[str, Any]:
    return clock.as_timed(decode(record.value), record).model_dump(mode="json")


async def read_from_log(log: EventLog, partition: int, offsets: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The bodies of the records at `offsets` of `partition`, by offset: one `EventLog.read`
    per range of them (see MAX_GAP)."""
    wanted = sorted(set(offsets))
    found: dict[int, dict[str, Any]] = {}
    start = 0
    for i in range(1, len(wanted) + 1):
        if i == len(wanted) or wanted[i] - wanted[i - 1] > MAX_GAP:
            first, last, chunk = wanted[start], wanted[i - 1], set(wanted[start:i])
            for record in await log.read(partition, first, last - first + 1):
                if record.offset in chunk:
                    found[record.offset] = _body(record)
            start = i
    missing = [o for o in wanted if o not in found]
    if missing:
        raise LookupError(f"event {partition}:{missing[0]} is indexed but not in the log")
    return found


async def body_of(log: EventLog, row: Any) -> dict[str, Any]:
    """The event's JSON body: from the index row if it kept one, else from the log."""
    if row.body is not None:
        return row.body
    return (await read_from_log(log, row.partition, [row.offset]))[row.offset]


async def with_bodies(log: EventLog, rows: list[Any]) -> list[tuple[Any, dict[str, Any]]]:
    """Each row paired with its body (rejected ones read from the log, a range at a time)."""
    by_partition: dict[int, list[int]] = {}
    for row in rows:
        if row.body is None:
            by_partition.setdefault(row.partition, []).append(row.offset)
    read = {}
    for partition, offsets in by_partition.items():
        for offset, body in (await read_from_log(log, partition, offsets)).items():
            read[(partition, offset)] = body
    return [(row, row.body if row.body is not None else read[(row.partition, row.offset)]) for row in rows]
