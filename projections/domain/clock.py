"""Producer clocks are bounded by the log's own clock and by causality. Pure: the
append time and the aggregate's creation are data.

A producer stamps `occurred_at`; the log stamps each record when it appends it
(`Record.timestamp_ms`: the embedded log at append, Kafka with the topic's
`message.timestamp.type=LogAppendTime`). The fold times an event by its producer
stamp clamped into [floor, append time], where the floor is the later of
append time - MAX_PRODUCER_LAG and the creation of the event's run:

- never after its append (a fact cannot be written down before it happened), so no
  `completed_at` lies in the future and `as_of=<now>` sees everything appended by now;
- never before its run was created (no fact about a run precedes the run), so a pass
  stamped 25 years early makes a two-second run last two seconds at most: a run's
  duration is never longer than its wall time from creation to its last append;
- never more than MAX_PRODUCER_LAG before its append: a producer may buffer results
  through an outage of days, not of years. This bounds the creating events
  themselves (a RunCreated has no earlier fact to follow).

Should the two bounds cross (a log clock stepped back below the run's creation),
causality wins: the event is timed at the creation, so no duration is negative.

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


def timed(occurred_at: datetime, appended: datetime | None, created: datetime | None = None) -> datetime:
    """The time the fold uses for an event stamped `occurred_at`, appended at `appended`,
    about a run created at `created` (None for a RunCreated, and for other aggregates)."""
    at = occurred_at
    if appended is not None:
        at = min(max(at, appended - MAX_PRODUCER_LAG), appended)
    return created if created is not None and at < created else at


def timed_event(event: Event, appended: datetime | None, created: datetime | None = None) -> Event:
    """`event` as the fold times it (the same event when its stamp is within bounds)."""
    at = timed(event.occurred_at, appended, created)
    return event if at == event.occurred_at else event.model_copy(update={"occurred_at": at})


def clamp_note(occurred_at: datetime, at: datetime, created: datetime | None = None) -> str | None:
    """A note for the run's history when the producer's stamp was moved noticeably."""
    if abs(at - occurred_at) < NOTE_BEYOND:
        return None
    if occurred_at > at:
        where = "after the log's append time"
    elif created is not None and at == created:
        where = "before its run's creation"
    else:
        where = f"more than {MAX_PRODUCER_LAG.days} days before the log's append time"
    return f"producer clock: occurred_at {occurred_at.isoformat()} is {where}; timed at {at.isoformat()}"
