"""One partition's batch in three steps: load (a short read), fold (pure CPU, run by the
projector in a worker thread, outside any transaction), save (inside the caller's write
transaction, with the checkpoint's compare-and-set).

The fold goes aggregate by aggregate: when it raises on one (a bug, deterministic), that
aggregate's events of the batch are parked and it is quarantined; the others go on. A
store error is isolated the same way by `save(..., isolate=True)`, one savepoint each.
"""
from __future__ import annotations

import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from events import keys
from events.codec import UndecodableEvent, decode
from events.envelope import Event
from events.log import Record

from . import clock, quarantine
from . import serialize as ser
from . import fold as fold_module
from .fold import AGGREGATE_KIND, apply
from .state import RunState
from .tables import blocks, dead_letters, document_targets, event_index, experiments, run_documents, runs
from .transient import is_transient

Key = tuple[str, str]  # (kind, aggregate id)


def result_id(run_id: str, document_id: str) -> str:
    """Unambiguous for any ids (events.keys); the old `{run}/{document}` hash when that was."""
    return "res_" + uuid.uuid5(uuid.NAMESPACE_URL, keys.result_key(run_id, document_id)).hex[:24]


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
    _grouped: dict[Key, list[tuple[Record, Event]]] | None = field(default=None, repr=False)

    def decode_all(self) -> None:
        for record in self.records:
            try:
                self.events.append((record, decode(record.value), None))
            except UndecodableEvent as exc:
                self.events.append((record, None, str(exc)))

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

    def _fold_one(self, key: Key, events: list[tuple[Record, Event]]) -> None:
        state, rows, finished = self.states.get(key), [], []
        for record, event in events:
            try:
                applied = apply(state, event, self._timed_scorer, clock.appended_at(record))
            except Exception as exc:  # noqa: BLE001 - named with its position, then quarantined
                raise _FoldFailed(record, exc) from exc
            state = applied.state
            finished.extend((event.aggregate_id, d) for d in applied.finished_documents)
            rows.append(_index_row(record, event, applied.accepted, applied.reason))
        self.states[key], self.index_rows[key], self.finished[key] = state, rows, finished

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
        if (kind, agg_id) in batch.quarantined:
            continue
        wanted[kind].add(agg_id)
        for _, event in events:
            document_id = getattr(event.payload, "document_id", None)
            if document_id:
                docs.add((agg_id, document_id))
    await _load_runs(conn, batch, wanted["run"], docs)
    await _load_simple(conn, batch, "experiment", experiments, experiments.c.experiment_id,
                       wanted["experiment"], ser.experiment_from_json)
    await _load_simple(conn, batch, "block", blocks, blocks.c.block_key, wanted["block"], ser.block_from_json)
    batch.states.update(batch.loaded)


async def _load_simple(conn, batch, kind, table, id_col, ids, from_json) -> None:
    if not ids:
        return
    for row in (await conn.execute(select(id_col, table.c.state).where(id_col.in_(ids)))).all():
        batch.loaded[(kind, row[0])] = from_json(row[1])


async def _load_runs(conn, batch: Batch, run_ids: set[str], docs: set[tuple[str, str]]) -> None:
    if not run_ids:
        return
    found = (await conn.execute(select(runs.c.run_id, runs.c.state).where(runs.c.run_id.in_(run_ids)))).all()
    known = {run_id for run_id, _ in found}
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
    for run_id, state in found:
        batch.loaded[("run", run_id)] = ser.run_from_json(state, by_run[run_id])


async def save(conn: AsyncConnection, batch: Batch, isolate: bool = False, park: bool = True) -> None:
    """Write the batch. With `isolate`, each aggregate in its own savepoint: one that the
    store refuses (deterministically) is rolled back and quarantined, the others commit.
    `park=False` (a retry of parked events) leaves quarantine rows to the caller."""
    for key in sorted(set(batch.index_rows) | {k for k, s in batch.states.items() if s is not None}):
        if key in batch.failures or key in batch.parked:
            continue
        if not isolate:
            await _save_aggregate(conn, batch, key)
            continue
        try:
            async with conn.begin_nested():
                await _save_aggregate(conn, batch, key)
        except Exception as exc:  # noqa: BLE001 - sorted below: transient faults go up
            if is_transient(exc):
                raise
            batch.quarantine(key, batch.by_aggregate()[key][0][0], f"store: {type(exc).__name__}: {exc}")
    dead = [_dead_row(batch.projection, r, reason) for r, e, reason in batch.events if e is None]
    if dead:
        batch.poison = len(dead)
        await conn.execute(insert(dead_letters), dead)
    if park:
        await quarantine.park(conn, batch.projection, batch.parked, batch.failures, batch.events)


async def _save_aggregate(conn: AsyncConnection, batch: Batch, key: Key) -> None:
    kind, agg_id = key
    state = batch.states.get(key)
    if state is not None and state is not batch.loaded.get(key):
        await _SAVERS[kind](conn, batch, agg_id, state, key in batch.loaded)
    if batch.index_rows.get(key):
        await conn.execute(insert(event_index), batch.index_rows[key])
    await _save_targets(conn, batch, batch.finished.get(key, ()))


async def _save_run(conn, batch: Batch, run_id: str, run: RunState, exists: bool) -> None:
    values = dict(
        status=run.status, started_at=run.started_at, completed_at=run.completed_at,
        score=run.score, state=ser.run_to_json(run),
    )
    if exists:
        await conn.execute(update(runs).where(runs.c.run_id == run_id).values(**values))
    else:
        spec = run.spec
        await conn.execute(insert(runs).values(
            run_id=run_id, org_id=run.org_id, experiment_id=spec["experiment_id"],
            workflow_id=spec["workflow_id"], block_id=spec["block_id"], trigger_type=spec["trigger_type"],
            created_at=run.created_at, **values,
        ))
    new_docs = []
    for doc_id, doc in run.documents.items():
        original = batch.loaded_docs.get((run_id, doc_id))
        if doc is original:
            continue
        values = dict(status=doc.status, score=doc.score, state=ser.document_to_json(doc))
        if original is None and not exists:
            new_docs.append(dict(run_id=run_id, document_id=doc_id, result_id=result_id(run_id, doc_id),
                                 org_id=run.org_id, idx=doc.index, **values))
        else:
            where = (run_documents.c.run_id == run_id) & (run_documents.c.document_id == doc_id)
            await conn.execute(update(run_documents).where(where).values(**values))
    if new_docs:
        await conn.execute(insert(run_documents), new_docs)


async def _save_targets(conn: AsyncConnection, batch: Batch, finished) -> None:
    rows = []
    for run_id, doc_id in finished:
        doc = batch.states[("run", run_id)].documents[doc_id]
        for target in (doc.consensus or {}).get("targets", ()):
            rows.append(dict(run_id=run_id, document_id=doc_id, path=target["path"],
                             score=target["score"], value=target.get("value"), rows=target.get("rows", [])))
    if rows:
        await conn.execute(insert(document_targets), rows)


async def _save_experiment(conn, batch: Batch, experiment_id: str, exp, exists: bool) -> None:
    values = dict(state=ser.experiment_to_json(exp), deleted=exp.deleted)
    if exists:
        await conn.execute(update(experiments).where(experiments.c.experiment_id == experiment_id).values(**values))
    else:
        await conn.execute(insert(experiments).values(
            experiment_id=experiment_id, org_id=exp.org_id, workflow_id=exp.workflow_id, block_id=exp.block_id,
            created_at=exp.created_at, **values))


async def _save_block(conn, batch: Batch, key: str, block, exists: bool) -> None:
    state = ser.block_to_json(block)
    if exists:
        await conn.execute(update(blocks).where(blocks.c.block_key == key).values(state=state))
    else:
        await conn.execute(insert(blocks).values(block_key=key, org_id=block.org_id, state=state))


_SAVERS = {"run": _save_run, "experiment": _save_experiment, "block": _save_block}


def _index_row(record: Record, event: Event, accepted: bool, reason: str | None) -> dict:
    """A rejected event keeps no body here (NULL): it is in the log, at this position,
    and readers fetch it from there (projections/event_bodies.py)."""
    event = clock.as_timed(event, record)  # as the fold timed it, so every refold from the index agrees
    return dict(
        partition=record.partition, offset=record.offset, event_id=str(event.event_id),
        aggregate_id=event.aggregate_id, org_id=event.org_id, type=event.type,
        occurred_at=event.occurred_at, producer=event.producer, accepted=accepted, reason=reason,
        body=event.model_dump(mode="json") if accepted else None,
    )


def _dead_row(projection: str, record: Record, reason: str) -> dict:
    return dict(projection=projection, partition=record.partition, offset=record.offset,
                key=record.key, reason=reason, value=record.value)
