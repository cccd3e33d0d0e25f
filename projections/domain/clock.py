"""Producer clocks are bounded by the log's own clock. Pure: the append time is data.

A producer stamps `occurred_at`; the log stamps each record when it appends it
(`Record.timestamp_ms`: the embedded log at append, Kafka with the topic's
`message.timestamp.type=LogAppendTime`). The fold times an event by its producer
stamp clamped into [append time - MAX_PRODUCER_LAG, append time]:

- never after its append (a fact cannot be written down before it happened), so no
  `completed_at` lies in the future and `as_of=<now>` sees everything appended by now;
- never more than MAX_PRODUCER_LAG before it: a producer may buffer results through
  an outage of days, not of years, so a clock stuck in 2001 cannot make a run last 25 years.

Clamped, not rejected: a rejected pass would leave its document unfinished for ever
because of one worker's clock, while its result is fine. The event index keeps the
event as timed (so every refold from it, `as_of` included, agrees with the live fold),
with a note naming the producer's stamp; the log keeps the original.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from events.envelope import Event
from events.log import Record

MAX_PRODUCER_LAG = timedelta(days=7)
NOTE_BEYOND = timedelta(seconds=1)
"""Clamps smaller than this (ordinary skew between a producer and the log) go unnoted."""


def appended_at(record: Record) -> datetime | None:
    """The log's append time of a record; None when the log has none (Kafka answers -1)."""
    if record.timestamp_ms is None or record.timestamp_ms <= 0:
        return None
    return datetime.fromtimestamp(record.timestamp_ms / 1000, timezone.utc)


def timed(occurred_at: datetime, appended: datetime | None) -> datetime:
    """The time the fold uses for an event stamped `occurred_at` and appended at `appended`."""
    if appended is None:
        return occurred_at
    return min(max(occurred_at, appended - MAX_PRODUCER_LAG), appended)


def timed_event(event: Event, appended: datetime | None) -> Event:
    """`event` as the fold times it (the same event when its stamp is within bounds)."""
    at = timed(event.occurred_at, appended)
    return event if at == event.occurred_at else event.model_copy(update={"occurred_at": at})


def as_timed(event: Event, record: Record) -> Event:
    """The event of `record` as the fold timed it: what the event index keeps."""
    return timed_event(event, appended_at(record))


def clamp_note(occurred_at: datetime, at: datetime) -> str | None:
    """A note for the run's history when the producer's stamp was moved noticeably."""
    if abs(at - occurred_at) < NOTE_BEYOND:
        return None
    where = "after" if occurred_at > at else f"more than {MAX_PRODUCER_LAG.days} days before"
    return (f"producer clock: occurred_at {occurred_at.isoformat()} is {where} the log's append time; "
            f"timed at {at.isoformat()}")
