"""The event index as a history a request can read a page of (issue 17), kept by the batch.

Per aggregate, while the batch folds (`Tracker`, pure):
- each new index row gets its place in the aggregate's history (`seq`, from 0), its size on
  the log, the document a pass event names, the pass it recorded as a fact (`pass_fact`),
  and, for a run, the counters the console's timeline shows after it;
- an event that reaches the log again after it was accepted (the same event id, type and
  aggregate, in the same partition: a producer's retry, a direct writer's resend) is not
  folded again and gets no row of its own: its accepted row counts the delivery
  (`deliveries`, `last_offset`) and `event_deliveries` says where the copy is (for verify).
  The log keeps every record. Within one batch and across batches alike, so a refold of
  the run's records (projections/runtime/run_rows.py) gives the very same rows;
- a snapshot (projections/domain/snapshots.py) of a run after its RunCreated and after every
  SNAPSHOT_EVERY rows of its history, written in the batch's transaction like every other
  row (the first one spares time travel the RunCreated event: up to 5,000 documents);
- `history_heads` keeps the running figures (next seq, pass facts, latest event time).

`load` reads what that needs, once per batch: the heads of the touched aggregates and the
accepted rows already indexed for the batch's event ids (one indexed SELECT each), plus,
for aggregates without a head, whether they have rows from before migration 0012 (such an
aggregate stays untracked: no seq, counters or snapshots, until a rebuild or repair).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from events.envelope import Event
from events.log import Record
from projections.domain import snapshots
from projections.store.tables import event_index, history_heads
from projections.store.writes import AggregateWrites, json_text

PASS_EVENTS = ("DocumentPassCompleted", "DocumentPassFailed")


@dataclass
class Head:
    next_seq: int | None = 0  # None: indexed before 0012, untracked
    pass_facts: int = 0
    high_water: datetime | None = None
    stored: bool = False


@dataclass
class Indexed:
    """An accepted row of the index, that later deliveries of its event are counted on."""

    partition: int
    offset: int
    deliveries: int = 1
    last_offset: int | None = None
    row: dict | None = None  # the row itself when this batch writes it


@dataclass
class Loaded:
    heads: dict[str, Head] = field(default_factory=dict)
    accepted: dict[tuple[str, str, str], Indexed] = field(default_factory=dict)  # (aggregate, event id, type)


def is_fact(event: Event) -> bool:
    return event.type == "DocumentPassCompleted" or (event.type == "DocumentPassFailed" and event.payload.final)


class Tracker:
    """One aggregate's history in one batch: annotates its index rows, collapses repeats,
    takes snapshots, and lays out what that writes."""

    def __init__(self, kind: str, aggregate_id: str, loaded: Loaded, every: int):
        self.kind, self.aggregate_id, self.every = kind, aggregate_id, every
        self.head = loaded.heads.get(aggregate_id) or Head()
        self._accepted = loaded.accepted
        self.repeats: dict[tuple[int, int], Indexed] = {}  # stored rows counting new deliveries
        self.deliveries: list[dict[str, Any]] = []
        self.snapshots: list[dict[str, Any]] = []
        self._changed = self.head.next_seq is None and not self.head.stored  # an untracked aggregate's marker

    def repeat(self, record: Record, event: Event) -> bool:
        """True when `event` was accepted before (it is then counted, not folded)."""
        indexed = self._accepted.get((self.aggregate_id, str(event.event_id), event.type))
        if indexed is None or indexed.partition != record.partition:
            return False
        indexed.deliveries += 1
        indexed.last_offset = record.offset
        if indexed.row is not None:
            indexed.row.update(deliveries=indexed.deliveries, last_offset=record.offset)
        else:
            self.repeats[(indexed.partition, indexed.offset)] = indexed
        self.deliveries.append(dict(partition=record.partition, offset=record.offset,
                                    aggregate_id=self.aggregate_id, event_offset=indexed.offset))
        return True

    def indexed(self, row: dict, record: Record, event: Event, accepted: bool, state: Any) -> None:
        """Annotate a new index row; `state`: the aggregate after the event."""
        head, fact = self.head, accepted and is_fact(event)
        row.update(size=len(record.value), pass_fact=event.payload.pass_index if fact else None,
                   deliveries=None, last_offset=None,
                   seq=head.next_seq, counters=None)
        if accepted:
            self._accepted[(self.aggregate_id, row["event_id"], event.type)] = Indexed(
                record.partition, record.offset, row=row)
        if head.next_seq is None:
            return
        self._changed = True
        head.next_seq += 1
        head.pass_facts += fact
        head.high_water = row["occurred_at"] if head.high_water is None else max(head.high_water, row["occurred_at"])
        if self.kind != "run":
            return
        row["counters"] = snapshots.counters(state, head.pass_facts)
        if head.next_seq % self.every == 0 or (accepted and event.type == "RunCreated"):
            self.snapshots.append(dict(run_id=self.aggregate_id, seq=row["seq"], partition=record.partition,
                                       offset=record.offset, high_water=head.high_water,
                                       state=snapshots.compact(state, head.pass_facts)))

    def rows(self) -> dict[str, list[dict[str, Any]]]:
        """What this writes beside the index rows, as plain values (verify compares these)."""
        head = self.head
        heads = [dict(aggregate_id=self.aggregate_id, next_seq=head.next_seq, pass_facts=head.pass_facts,
                      high_water=head.high_water)] if self._changed else []
        return {"history_heads": heads, "run_snapshots": list(self.snapshots),
                "event_deliveries": list(self.deliveries)}

    def writes(self, out: AggregateWrites) -> None:
        for indexed in self.repeats.values():
            out.update("event_index", dict(deliveries=indexed.deliveries, last_offset=indexed.last_offset,
                                           k_partition=indexed.partition, k_offset=indexed.offset))
        if self.deliveries:
            out.insert("event_deliveries", self.deliveries)
        out.insert("run_snapshots", [dict(s, state=json_text(s["state"])) for s in self.snapshots])
        for head in self.rows()["history_heads"]:
            if self.head.stored:
                head["k_id"] = head.pop("aggregate_id")
                out.update("history_heads", head)
            else:
                out.insert("history_heads", [head])


def may_repeat(event: Event, loaded_docs: dict[tuple[str, str], Any]) -> bool:
    """Whether `event` may repeat one accepted in an earlier batch. A pass fact can only
    repeat the fact its document already holds for that pass (the index's fact rows and the
    documents' passes are written together): with none loaded, it is new. So the lookup is
    skipped for the common event, a run's next pass."""
    if is_fact(event):
        doc = loaded_docs.get((event.aggregate_id, event.payload.document_id))
        return doc is not None and event.payload.pass_index in doc.passes
    return True


async def load(conn: AsyncConnection, aggregate_ids: set[str], events: list[tuple[Record, Event]],
               loaded_docs: dict[tuple[str, str], Any]) -> Loaded:
    """What the batch's trackers start from (see the module's docstring)."""
    loaded = Loaded()
    if not aggregate_ids:
        return loaded
    query = select(history_heads).where(history_heads.c.aggregate_id.in_(aggregate_ids))
    for row in (await conn.execute(query)).all():
        loaded.heads[row.aggregate_id] = Head(row.next_seq, row.pass_facts, row.high_water, stored=True)
    missing = aggregate_ids - set(loaded.heads)
    if missing:
        query = select(event_index.c.aggregate_id).where(event_index.c.aggregate_id.in_(missing)).distinct()
        for legacy in (await conn.execute(query)).scalars():
            loaded.heads[legacy] = Head(None)  # rows from before 0012: untracked (stored with next_seq NULL)
    wanted = {str(e.event_id) for _, e in events if e.aggregate_id in aggregate_ids and may_repeat(e, loaded_docs)}
    partitions = {r.partition for r, _ in events}
    if wanted:  # by event id alone (its index): a partition filter here made SQLite scan the partition
        query = select(event_index.c.aggregate_id, event_index.c.event_id, event_index.c.type,
                       event_index.c.partition, event_index.c.offset, event_index.c.deliveries,
                       event_index.c.last_offset).where(event_index.c.event_id.in_(wanted),
                                                        event_index.c.accepted.is_(True))
        for row in (await conn.execute(query)).all():
            if row.aggregate_id in aggregate_ids and row.partition in partitions:
                loaded.accepted[(row.aggregate_id, row.event_id, row.type)] = Indexed(
                    row.partition, row.offset, row.deliveries or 1, row.last_offset)
    return loaded
