"""One run's rows, read from the read model or derived afresh from its own events, a chunk
at a time, so that memory stays flat however long the run's history.

`ChunkedRefold` replays a run's records (read from the log at the positions the event
index lists: `position_pages`, then `read_records`, one `EventLog.read` per stretch of
the log) through the projector's own batch fold, `CHUNK` events at a time. Between chunks
it keeps the run's scalars in memory and its documents in a `Spill`, as the projector
keeps them in the read model between batches: a chunk loads the documents its events
touch. `run_row`, `document_row` and `target_rows_of` lay the result out exactly as the
projector's batch writes it, so the two can be compared row by row
(`projections.runtime.verify`). Cost: one fold of the run's events, consensus included for
every finished document: it runs in a verification worker process or a CLI process,
never on an API event loop.
"""
from __future__ import annotations

from typing import Any, AsyncIterator, Awaitable, Callable

import orjson
from sqlalchemy import func, select, tuple_, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from events.log import EventLog, Position, Record, read_at
from projections.domain.state import DocumentState, RunState, evolve
from projections.runtime import history_index
from projections.runtime.batch import Batch, result_id
from projections.runtime.spill import Spill
from projections.store import serialize as ser
from projections.store.read_columns import render, run_columns, run_filenames
from projections.store.tables import (
    document_targets, event_deliveries, event_index, history_heads, run_documents, run_snapshots, runs
)
from projections.store.target_labels import label_hash

# Per table: the run's rows are keyed (and ordered) by these columns.
RUN_TABLES = {
    "runs": (runs, ("run_id",)),
    "run_documents": (run_documents, ("document_id",)),
    "document_targets": (document_targets, ("document_id", "path")),
    "event_index": (event_index, ("partition", "offset")),
    "event_deliveries": (event_deliveries, ("partition", "offset")),
    "history_heads": (history_heads, ("aggregate_id",)),
    "run_snapshots": (run_snapshots, ("seq",)),
}
CHUNK = 500
"""Events folded at a time (and event index rows compared at a time)."""
DOCUMENTS_AT_ONCE = 100
"""Documents (and their targets) compared at a time."""
RecordCheck = Callable[[int, list[int], dict[int, Record]], Awaitable[None]]
"""`check(partition, offsets wanted, records found)`: see `read_records`."""


# -- the run's events --------------------------------------------------------------

def run_column(table):
    """The column that names the run in one of RUN_TABLES."""
    return table.c.run_id if "run_id" in table.c else table.c.aggregate_id


def _run_records(run_id: str):
    """Where the run's records are on the log: its indexed events and the repeated
    deliveries of accepted ones (`event_deliveries`: the index keeps one row per event)."""
    indexed = select(event_index.c.partition, event_index.c.offset).where(event_index.c.aggregate_id == run_id)
    repeats = select(event_deliveries.c.partition, event_deliveries.c.offset).where(
        event_deliveries.c.aggregate_id == run_id)
    return union_all(indexed, repeats).subquery()


async def event_count(conn: AsyncConnection, run_id: str) -> int:
    """The run's records on the log (repeated deliveries included)."""
    return await conn.scalar(select(func.count()).select_from(_run_records(run_id)))


async def position_pages(conn: AsyncConnection, run_id: str, size: int | None = None) -> AsyncIterator[list[Position]]:
    """Where the run's records are on the log (its indexed events and their repeated
    deliveries), in log order, `size` (`CHUNK`) at a time."""
    size = size or CHUNK
    found_at = _run_records(run_id)
    partition, offset = found_at.c.partition, found_at.c["offset"]
    query = select(partition, offset).order_by(partition, offset).limit(size)
    last = None
    while True:
        page = query if last is None else query.where(tuple_(partition, offset) > tuple_(*last))
        found = (await conn.execute(page)).all()
        if found:
            yield [Position(p, o) for p, o in found]
        if len(found) < size:
            return
        last = tuple(found[-1])


async def read_records(log: EventLog, positions: list[Position], check: RecordCheck | None = None) -> list[Record]:
    """The records at `positions` (one partition's, in order), from the log, the source of
    truth (append times included): one `EventLog.read` per stretch of nearby offsets
    (events.log.read_at). `check`: also compare them with their Merkle leaves (the notary),
    before a missing record raises."""
    partition, offsets = positions[0].partition, [p.offset for p in positions]
    found = await read_at(log, partition, offsets)
    if check is not None:
        await check(partition, offsets, found)
    missing = next((p for p in positions if p.offset not in found), None)
    if missing is not None:
        raise LookupError(f"the log has no record at {missing.token()}")
    return [found[offset] for offset in offsets]


# -- the refold ----------------------------------------------------------------------

class ChunkedRefold:
    """Fold the run's records from nothing, a chunk at a time, exactly as the projector's
    batch folds them; the documents live in `spill` between chunks."""

    def __init__(self, run_id: str, spill: Spill, projection: str = "main"):
        self.run_id, self.spill, self.projection = run_id, spill, projection
        self.state: RunState | None = None  # its `documents` are in the spill
        self.finished: set[str] = set()
        self.failure: str | None = None  # the fold raised (the run would be quarantined)
        self.passes = 0  # pass facts over the run's documents so far (runs.passes)
        self.history = history_index.Loaded()  # the index's running figures, as the store keeps them
        self.snapshots: list[dict[str, Any]] = []

    def fold(self, records: list[Record]) -> None:
        """Fold the next chunk. Its derived event index rows go to the spill; a repeated
        delivery of an event accepted in an earlier chunk updates that row there (so the
        index is compared once every chunk is folded: `verify`)."""
        key = ("run", self.run_id)
        batch = Batch(self.projection, records)
        batch.decode_all()
        batch.history = self.history
        if self.state is not None:
            touched = {getattr(e.payload, "document_id", None) for _, e in batch.by_aggregate().get(key, ())}
            loaded = self.spill.documents(touched & self.state.document_ids)
            batch.loaded[key] = batch.states[key] = evolve(self.state, documents=loaded)
            batch.loaded_docs.update({(self.run_id, d): doc for d, doc in loaded.items()})
        batch.fold()
        if key in batch.failures:
            self.failure = batch.failures[key]
            return
        self._track(batch.trackers.get(key), batch.index_rows.get(key, []))
        state = batch.states.get(key)
        self.finished.update(doc for _, doc in batch.finished.get(key, ()))
        if state is not None:
            changed = [doc for doc in state.documents.values()
                       if doc is not batch.loaded_docs.get((self.run_id, doc.document_id))]
            self.passes += sum(len(doc.passes) - _passes(batch.loaded_docs.get((self.run_id, doc.document_id)))
                               for doc in changed)
            self.spill.put_documents(changed)
            self.state = evolve(state, documents={})

    def _track(self, tracker: history_index.Tracker | None, rows: list[dict[str, Any]]) -> None:
        """As the projector's batch writes them: the chunk's index rows, its repeats' counts on
        rows of earlier chunks, deliveries, snapshots; the head carried to the next chunk."""
        if tracker is None:
            return
        self.spill.put_events([{**row, "body": _parsed(row["body"])} for row in rows])  # as the store gives it
        self.spill.count_deliveries(tracker.repeats.values())
        self.spill.put_rows("event_deliveries", tracker.deliveries)
        self.snapshots += tracker.snapshots
        self.history.heads[self.run_id] = tracker.head
        for indexed in self.history.accepted.values():
            indexed.row = None  # in the spill now: a later repeat counts there

    def history_rows(self) -> dict[str, list[dict[str, Any]]]:
        """The run's `history_heads` and `run_snapshots` rows, as the projector writes them."""
        head = self.history.heads.get(self.run_id)
        heads = [dict(aggregate_id=self.run_id, next_seq=head.next_seq, pass_facts=head.pass_facts,
                      high_water=head.high_water)] if head is not None else []
        return {"history_heads": heads, "run_snapshots": list(self.snapshots)}


def _parsed(body: Any) -> Any:
    """An index row's body as the store gives it back: the batch writes it as JSON text."""
    return orjson.loads(str(body)) if isinstance(body, str) else body  # str(): orjson takes no subclass


def _passes(doc: DocumentState | None) -> int:
    return len(doc.passes) if doc is not None else 0


def run_row(run: RunState, passes: int | None) -> dict[str, Any]:
    """`passes`: the pass facts over the run's documents (`runs.passes`; ChunkedRefold counts them)."""
    spec = run.spec
    return dict(
        run_id=run.run_id, org_id=run.org_id, experiment_id=spec["experiment_id"],
        workflow_id=spec["workflow_id"], block_id=spec["block_id"], trigger_type=spec["trigger_type"],
        status=run.status, created_at=run.created_at, started_at=run.started_at,
        completed_at=run.completed_at, score=run.score, state=ser.run_to_json(run), **run_columns(run),
        passes=passes, spec=run.spec, filenames=render(run_filenames(run)),
    )


def document_row(run: RunState, doc: DocumentState) -> dict[str, Any]:
    return dict(run_id=run.run_id, document_id=doc.document_id, result_id=result_id(run.run_id, doc.document_id),
                org_id=run.org_id, idx=doc.index, status=doc.status, score=doc.score,
                state=ser.document_to_json(doc))


def target_rows_of(run: RunState, doc: DocumentState) -> list[dict[str, Any]]:
    """The consensus target rows of a document that finished in the refold."""
    block_type = run.spec["block_type"]
    return sorted((dict(run_id=run.run_id, document_id=doc.document_id, path=t["path"], score=t["score"],
                        value=t.get("value"), rows=t.get("rows", []), label_hash=label_hash(block_type, t.get("value")))
                   for t in (doc.consensus or {}).get("targets", ())), key=lambda r: r["path"])


# -- the live rows -------------------------------------------------------------------

def _rows(result) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in result.all()]


async def live_run(conn: AsyncConnection, run_id: str) -> list[dict[str, Any]]:
    return _rows(await conn.execute(select(runs).where(runs.c.run_id == run_id)))


async def live_document_ids(conn: AsyncConnection, run_id: str) -> list[str]:
    query = select(run_documents.c.document_id).where(run_documents.c.run_id == run_id)
    return list((await conn.execute(query)).scalars().all())


async def live_documents(conn: AsyncConnection, run_id: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    query = select(run_documents).where(run_documents.c.run_id == run_id, run_documents.c.document_id.in_(ids))
    return {row["document_id"]: row for row in _rows(await conn.execute(query))}


async def live_targets(conn: AsyncConnection, run_id: str, ids: list[str]) -> list[dict[str, Any]]:
    query = select(document_targets).where(document_targets.c.run_id == run_id,
                                           document_targets.c.document_id.in_(ids))
    return _rows(await conn.execute(query))


async def live_between(conn: AsyncConnection, name: str, run_id: str, after: tuple[int, int] | None,
                       until: tuple[int, int] | None) -> list[dict[str, Any]]:
    """The run's rows of a table keyed by (partition, offset) (`event_index`,
    `event_deliveries`) after `after` up to `until` (None: unbounded)."""
    table = RUN_TABLES[name][0]
    key = tuple_(table.c.partition, table.c.offset)
    query = select(table).where(run_column(table) == run_id)
    if after is not None:
        query = query.where(key > tuple_(*after))
    if until is not None:
        query = query.where(key <= tuple_(*until))
    return _rows(await conn.execute(query))


async def live_of(conn: AsyncConnection, name: str, run_id: str) -> list[dict[str, Any]]:
    """All the run's rows of a small table (`history_heads`, `run_snapshots`)."""
    table = RUN_TABLES[name][0]
    return _rows(await conn.execute(select(table).where(run_column(table) == run_id)))
