"""One partition's batch in four steps: load (a short read), fold and prepare (pure CPU,
run by the projector in a worker thread or a pool's process, outside any transaction:
`prepare` builds every row, projections/store/writes.py), save (I/O only, one statement per
table, inside the caller's write transaction, with the checkpoint's compare-and-set).

The fold goes aggregate by aggregate: when it raises on one (a bug, deterministic), that
aggregate's events of the batch are parked and it is quarantined; the others go on. A
store error is isolated the same way by `save(..., isolate=True)`, one savepoint each;
a transient fault there (a full disk above all) aborts the whole batch instead, as does
a savepoint the store took away with the transaction (`TransactionLost`): savepoints,
quarantine rows and parked events are written in the checkpoint's transaction, or not at all.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from events.codec import UndecodableEvent, decode
from events.envelope import Event
from events.log import Record
from projections.domain import clock, fold as fold_module
from projections.domain.fold import AGGREGATE_KIND, apply
from projections.domain.snapshots import SNAPSHOT_EVERY
from projections.domain.state import evolve
from projections.runtime import changes, history_index, quarantine
from projections.runtime.transient import is_transient
from projections.store import bulk_writes, row_versions, serialize as ser, writes as writes_module
from projections.store.database import JsonText
from projections.store.tables import blocks, dead_letters, experiments, run_documents, runs
from projections.store.writes import AggregateWrites, Owner, Writes, result_id  # noqa: F401  (result_id: its old home)

Key = tuple[str, str]  # (kind, aggregate id)


@dataclass
class Batch:
    projection: str
    records: list[Record]
    events: list[tuple[Record, Event | None, str | None]] = field(default_factory=list)
    loaded: dict[Key, Any] = field(default_factory=dict)
    states: dict[Key, Any] = field(default_factory=dict)
    loaded_docs: dict[tuple[str, str], Any] = field(default_factory=dict)
    index_rows: dict[Key, list[dict]] = field(default_factory=dict)
    finished: dict[Key, list[tuple[str, str]]] = field(default_factory=dict)
    quarantined: set[Key] = field(default_factory=set)  # already quarantined: park, don't fold
    failures: dict[Key, str] = field(default_factory=dict)  # quarantined by this batch
    parked: dict[Key, list[Record]] = field(default_factory=dict)
    consensus_seconds: list[float] = field(default_factory=list)
    poison: int = 0
    writes: Writes | None = None  # set by prepare()
    traces: list[str] = field(default_factory=list)  # the events' distinct traceparents, kept by prepare()
    tree: Any = None  # the partition's Merkle tree tail (projections/notary), set and saved by the projector
    marks: dict[str, tuple[int, int | None]] = field(default_factory=dict)  # loaded runs' (version, passes)
    owners: dict[Key, tuple[str, str | None]] = field(default_factory=dict)  # written rows' (org, experiment)
    changed: changes.Changed | None = None  # what save() wrote, for changes.published after the commit
    history: history_index.Loaded = field(default_factory=history_index.Loaded)  # set by load()
    trackers: dict[Key, history_index.Tracker] = field(default_factory=dict)  # by fold(), dropped by prepare()
    snapshot_every: int = SNAPSHOT_EVERY
    cache: Any = None  # kept aggregates (projections/runtime/bulk.py: a catch-up's, or a live projector's)
    bulk: bool = False  # a bulk catch-up's flush: new rows copied in (projections/store/bulk_writes.py)
    lent: dict[str, int] = field(default_factory=dict)  # runs lent by the cache: the version each was kept at
    steps: dict[str, float] = field(default_factory=dict)  # seconds per step (decode, load, fold, write), logged
    gc_seconds: float = 0.0  # the collector's pauses while it was applied (projections/runtime/gc_policy.py), logged
    _grouped: dict[Key, list[tuple[Record, Event]]] | None = field(default=None, repr=False)

    def decode_all(self) -> None:
        for record in self.records:
            try:
                self.events.append((record, decode(record.value), None))
            except UndecodableEvent as exc:
                self.events.append((record, None, str(exc)))
        self.traces = list(dict.fromkeys(e.trace for _, e, _ in self.events if e is not None and e.trace))

    def by_aggregate(self) -> dict[Key, list[tuple[Record, Event]]]:
        """The decoded events per aggregate, in log order."""
        if self._grouped is None:
            self._grouped = defaultdict(list)
            for record, event, _ in self.events:
                if event is not None:
                    self._grouped[(AGGREGATE_KIND[event.type], event.aggregate_id)].append((record, event))
        return self._grouped

    def fold(self) -> None:
        """Pure: no I/O. Cost: the fold of each event, plus consensus for each document
        that finishes (bounded per document by the event contract and the engine)."""
        for key, events in self.by_aggregate().items():
            if key in self.quarantined:
                self.parked[key] = [record for record, _ in events]
                continue
            try:
                self._fold_one(key, events)
            except _FoldFailed as failed:  # a bug on a valid event: quarantine its run
                self.quarantine(key, failed.record, f"{type(failed.error).__name__}: {failed.error}")

    def quarantine(self, key: Key, failed_at: Record, error: str) -> None:
        """Set the aggregate aside: nothing of it in this batch is written but its parked events."""
        self.failures[key] = f"offset {failed_at.offset}: {error}"
        self.parked[key] = [record for record, _ in self.by_aggregate()[key]]
        self.states[key] = self.loaded.get(key)
        self.index_rows.pop(key, None)
        self.finished.pop(key, None)
        self.trackers.pop(key, None)

    def _fold_one(self, key: Key, events: list[tuple[Record, Event]]) -> None:
        state, rows, finished = self.states.get(key), [], []
        tracker = history_index.Tracker(*key, self.history, self.snapshot_every)
        for record, event in events:
            if tracker.repeat(record, event):  # an accepted event delivered again: counted, not folded
                continue
            appended = clock.appended_at(record)
            try:
                as_timed = fold_module.timed(state, event, appended)  # as the fold times it: the index keeps that
                applied = apply(state, event, self._timed_scorer, appended)
            except Exception as exc:  # noqa: BLE001 - named with its position, then quarantined
                raise _FoldFailed(record, exc) from exc
            state = applied.state
            finished.extend((event.aggregate_id, d) for d in applied.finished_documents)
            rows.append(_index_row(record, as_timed, applied.accepted, applied.reason))
            tracker.indexed(rows[-1], record, as_timed, applied.accepted, state)
        self.states[key], self.index_rows[key], self.finished[key] = state, rows, finished
        self.trackers[key] = tracker

    def prepare(self) -> Writes:
        """Pure CPU, after the fold: every row `save` writes, JSON columns serialised. Then
        the batch drops what only the fold needed (decoded events, states, loaded rows),
        so that it travels back small from a pool process; `records`, `index_rows`,
        `finished`, `failures` and `parked` stay. Idempotent."""
        if self.writes is not None:
            return self.writes
        writes = Writes()
        for key in sorted(set(self.index_rows) | {k for k, s in self.states.items() if s is not None}):
            if key not in self.failures and key not in self.parked:
                writes.aggregates[key] = self._aggregate_writes(key)
        writes.dead = [_dead_row(self.projection, r, reason) for r, e, reason in self.events if e is None]
        org_of = {e.aggregate_id: e.org_id for _, e, _ in self.events if e is not None}
        writes.owners = [(None, Owner(agg_id, org_id), None) for agg_id, org_id in org_of.items()]
        self.writes = writes
        if self.cache is not None:
            self.cache.keep(self)
        self.events, self.states, self.loaded, self.loaded_docs, self._grouped = [], {}, {}, {}, None
        self.history, self.trackers = history_index.Loaded(), {}
        return writes

    def _aggregate_writes(self, key: Key) -> AggregateWrites:
        kind, agg_id = key
        out = AggregateWrites([record for record, _ in self.by_aggregate().get(key, ())])
        state = self.states.get(key)
        if state is not None and state is not self.loaded.get(key):
            exists = key in self.loaded
            self.owners[key] = _owner(kind, state)
            if kind == "run":
                writes_module.run_writes(out, state, exists, self.loaded_docs)
                row_versions.stamp_run(out, state, self.loaded_docs, self.marks.get(agg_id) if exists else None)
            elif kind == "experiment":
                writes_module.experiment_writes(out, agg_id, state, exists)
            else:
                writes_module.block_writes(out, agg_id, state, exists)
        rows = self.index_rows.get(key)
        if rows:
            for row in rows:
                row["body"] = writes_module.json_text(row["body"])
                row["counters"] = writes_module.json_text(row.get("counters"))
            out.insert("event_index", rows)
        if key in self.trackers:
            self.trackers[key].writes(out)
        if self.finished.get(key):
            out.insert("document_targets", writes_module.target_rows(state, self.finished[key]))
        return out

    def refused(self, key: Key, error: str) -> None:
        """The store refused the aggregate's prepared rows (save with `isolate`): set it
        aside as `quarantine` does, its records parked."""
        aggregate = self.writes.aggregates.pop(key)
        self.failures[key] = f"offset {aggregate.records[0].offset}: {error}"
        self.parked[key] = aggregate.records
        self.index_rows.pop(key, None)
        self.finished.pop(key, None)
        self.trackers.pop(key, None)

    def _timed_scorer(self, spec, votes):
        started = time.perf_counter()
        try:
            return fold_module.score_document(spec, votes)  # looked up here: a bench swaps it
        finally:
            self.consensus_seconds.append(time.perf_counter() - started)


class _FoldFailed(Exception):
    def __init__(self, record: Record, error: Exception):
        super().__init__(record.offset)
        self.record, self.error = record, error


async def load(conn: AsyncConnection, batch: Batch, honour_quarantine: bool = True) -> None:
    """Read what the fold needs: the touched aggregates' states, and which are quarantined
    (not with `honour_quarantine=False`: a retry of their parked events)."""
    grouped = batch.by_aggregate()
    if honour_quarantine:
        batch.quarantined = await quarantine.which(conn, batch.projection, set(grouped))
    wanted: dict[str, set[str]] = {"run": set(), "experiment": set(), "block": set()}
    docs: set[tuple[str, str]] = set()
    for (kind, agg_id), events in grouped.items():
        if (kind, agg_id) in batch.quarantined or kind not in wanted:  # "notary": no state to load
            continue
        wanted[kind].add(agg_id)
        for _, event in events:
            document_id = getattr(event.payload, "document_id", None)
            if document_id:
                docs.add((agg_id, document_id))
    held = batch.cache.lend(batch, docs) if batch.cache is not None else {}  # states kept from earlier batches
    await _load_runs(conn, batch, wanted["run"] - held.get("run", set()), docs)
    await _load_missing_documents(conn, batch, held.get("run", set()), docs)
    batch.history = await history_index.load(conn, {agg for ids in wanted.values() for agg in ids},
                                             [pair for pairs in grouped.values() for pair in pairs], batch.loaded_docs)
    await _load_simple(conn, batch, "experiment", experiments, experiments.c.experiment_id,
                       wanted["experiment"] - held.get("experiment", set()), ser.experiment_from_json)
    await _load_simple(conn, batch, "block", blocks, blocks.c.block_key, wanted["block"] - held.get("block", set()),
                       ser.block_from_json)
    batch.states.update(batch.loaded)


async def _load_simple(conn, batch, kind, table, id_col, ids, from_json) -> None:
    if not ids:
        return
    for row in (await conn.execute(select(id_col, table.c.state).where(id_col.in_(ids)))).all():
        batch.loaded[(kind, row[0])] = from_json(row[1])


async def _load_runs(conn, batch: Batch, run_ids: set[str], docs: set[tuple[str, str]]) -> None:
    if not run_ids:
        return
    found = (await conn.execute(select(runs.c.run_id, runs.c.state, runs.c.version, runs.c.passes, runs.c.spec)
                                .where(runs.c.run_id.in_(run_ids)))).all()
    known = {row.run_id for row in found}
    wanted_docs = [pair for pair in docs if pair[0] in known]
    by_run: dict[str, dict] = {run_id: {} for run_id in known}
    if wanted_docs:
        query = select(run_documents.c.run_id, run_documents.c.state).where(
            tuple_(run_documents.c.run_id, run_documents.c.document_id).in_(wanted_docs)
        )
        for run_id, state in (await conn.execute(query)).all():
            doc = ser.document_from_json(state)
            by_run[run_id][doc.document_id] = doc
            batch.loaded_docs[(run_id, doc.document_id)] = doc
    for run_id, state, version, passes, spec in found:
        batch.loaded[("run", run_id)] = ser.run_from_json(state, by_run[run_id], spec)
        batch.marks[run_id] = (version or 0, passes)


async def _load_missing_documents(conn, batch: Batch, held: set[str], docs: set[tuple[str, str]]) -> None:
    """The documents the batch touches that a kept run does not hold (a run is kept as far
    as batches loaded it), read as `_load_runs` reads them and added to the kept state."""
    missing = [(run_id, doc_id) for run_id, doc_id in docs
               if run_id in held and doc_id not in batch.loaded[("run", run_id)].documents]
    if not missing:
        return
    batch.cache.missing += len(missing)
    query = select(run_documents.c.run_id, run_documents.c.state).where(
        tuple_(run_documents.c.run_id, run_documents.c.document_id).in_(missing))
    found: dict[str, dict] = {}
    for run_id, state in (await conn.execute(query)).all():
        doc = ser.document_from_json(state)
        found.setdefault(run_id, {})[doc.document_id] = doc
        batch.loaded_docs[(run_id, doc.document_id)] = doc
    for run_id, documents in found.items():
        run = batch.loaded[("run", run_id)]
        batch.loaded[("run", run_id)] = evolve(run, documents={**run.documents, **documents})


class StaleAggregates(RuntimeError):
    """Runs the cache lent were written by someone else since it kept them (their stored
    version moved): the cache let them go, and the batch is loaded and folded again."""

    transient = True  # retried like a transient fault (projections.runtime.transient)


async def check_lent(conn: AsyncConnection, batch: Batch) -> None:
    """In the write's transaction, before any row: every run the cache lent is still at the
    version it was kept at. On PostgreSQL the rows are locked until the commit (FOR UPDATE),
    so nobody writes them between this read and the batch's own writes; SQLite's write
    transaction holds the whole file."""
    if not batch.lent:
        return
    query = select(runs.c.run_id, runs.c.version).where(runs.c.run_id.in_(batch.lent))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    stored = {run_id: version or 0 for run_id, version in (await conn.execute(query)).all()}
    stale = sorted(run_id for run_id, version in batch.lent.items() if stored.get(run_id) != version)
    if stale:
        batch.cache.stale += len(stale)
        batch.cache.forget(batch.records[0].partition)
        raise StaleAggregates(f"runs written elsewhere since they were kept: {', '.join(stale[:5])}")


async def save(conn: AsyncConnection, batch: Batch, isolate: bool = False, park: bool = True) -> None:
    """Write the batch (prepared here unless `batch.prepare()` ran already): one statement
    per table for the whole batch. With `isolate`, each aggregate in its own savepoint
    instead: one that the store refuses (deterministically) is rolled back and
    quarantined, the others commit. `park=False` (a retry of parked events) leaves
    quarantine rows to the caller."""
    prepared = batch.prepare()
    await check_lent(conn, batch)
    if not isolate:
        execute = bulk_writes.execute if batch.bulk else writes_module.execute  # COPY for a bulk flush
        await execute(conn, prepared.aggregates.values())
    else:
        for key in list(prepared.aggregates):
            await _isolated(conn, batch, key)
    if prepared.dead:
        batch.poison = len(prepared.dead)
        await conn.execute(insert(dead_letters), prepared.dead)
    if park:
        await quarantine.park(conn, batch.projection, batch.parked, batch.failures, prepared.owners)
    batch.changed = changes.Changed.of((*key, *batch.owners[key]) for key in prepared.aggregates
                                       if key in batch.owners)
    await changes.record(conn, batch.records[0].partition if batch.records else 0, batch.changed)


def _owner(kind: str, state) -> tuple[str, str | None]:
    return state.org_id, state.spec["experiment_id"] if kind == "run" else None


class TransactionLost(RuntimeError):
    """The store ended the batch's transaction under us (SQLite rolls a whole transaction
    back on SQLITE_FULL, savepoints included): nothing of the batch may be written, and
    the batch is retried whole. Never a quarantine: the fault is the store's, not a run's."""

    transient = True  # projections.runtime.transient


async def _isolated(conn: AsyncConnection, batch: Batch, key: Key) -> None:
    """One aggregate's rows in a savepoint: refused (rolled back to the savepoint and
    quarantined) only when the store refuses them deterministically and the transaction
    is still whole. A transient fault, or a savepoint that is gone, aborts the batch."""
    savepoint = await conn.begin_nested()
    try:
        await writes_module.execute(conn, [batch.writes.aggregates[key]])
    except Exception as exc:  # noqa: BLE001 - transient faults go up, the rest is this run's
        if is_transient(exc):
            raise
        try:
            await savepoint.rollback()
        except Exception as lost:  # noqa: BLE001 - the whole transaction went with it
            raise TransactionLost(f"the store ended the batch's transaction ({lost}) after: {exc}") from exc
        batch.refused(key, f"store: {type(exc).__name__}: {exc}")
        return
    try:
        await savepoint.commit()
    except Exception as exc:  # noqa: BLE001
        if is_transient(exc):
            raise
        raise TransactionLost(f"the store ended the batch's transaction: {exc}") from exc


def _index_row(record: Record, event: Event, accepted: bool, reason: str | None) -> dict:
    """`event` as the fold timed it, so every refold from the index agrees. A rejected
    event keeps no body here (NULL): it is in the log, at this position, and readers
    fetch it from there, timed as this row says (projections/runtime/event_bodies.py).
    The body is written by pydantic-core's serialiser, the very text orjson makes of
    `model_dump(mode="json")` (tests/unit/test_writes.py), without the dict between."""
    return dict(
        partition=record.partition, offset=record.offset, event_id=str(event.event_id),
        aggregate_id=event.aggregate_id, org_id=event.org_id, type=event.type,
        occurred_at=event.occurred_at, producer=event.producer, accepted=accepted, reason=reason,
        body=JsonText(_EVENT_JSON(event).decode()) if accepted else None,
        document_id=getattr(event.payload, "document_id", None),  # a pass's document (one document's events)
    )


_EVENT_JSON = Event.__pydantic_serializer__.to_json


def _dead_row(projection: str, record: Record, reason: str) -> dict:
    return dict(projection=projection, partition=record.partition, offset=record.offset,
                key=record.key, reason=reason, value=record.value)
