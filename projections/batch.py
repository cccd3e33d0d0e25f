"""Fold a partition's records in memory and write each touched row once.

Everything here runs inside the caller's transaction; the checkpoint commits with it.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from events import keys
from events.codec import UndecodableEvent, decode
from events.envelope import Event
from events.log import Record

from . import serialize as ser
from .fold import AGGREGATE_KIND, apply
from .state import RunState
from .tables import blocks, dead_letters, document_targets, event_index, experiments, run_documents, runs


def result_id(run_id: str, document_id: str) -> str:
    """Unambiguous for any ids (events.keys); the old `{run}/{document}` hash when that was."""
    return "res_" + uuid.uuid5(uuid.NAMESPACE_URL, keys.result_key(run_id, document_id)).hex[:24]


@dataclass
class Batch:
    projection: str
    records: list[Record]
    events: list[tuple[Record, Event | None, str | None]] = field(default_factory=list)
    loaded: dict[tuple[str, str], Any] = field(default_factory=dict)
    states: dict[tuple[str, str], Any] = field(default_factory=dict)
    loaded_docs: dict[tuple[str, str], Any] = field(default_factory=dict)
    index_rows: list[dict] = field(default_factory=list)
    finished: list[tuple[str, str]] = field(default_factory=list)
    poison: int = 0

    def decode_all(self) -> None:
        for record in self.records:
            try:
                self.events.append((record, decode(record.value), None))
            except UndecodableEvent as exc:
                self.events.append((record, None, str(exc)))

    def fold(self) -> None:
        for record, event, _ in self.events:
            if event is None:
                continue
            key = (AGGREGATE_KIND[event.type], event.aggregate_id)
            applied = apply(self.states.get(key), event)
            self.states[key] = applied.state
            self.finished.extend((event.aggregate_id, d) for d in applied.finished_documents)
            self.index_rows.append(_index_row(record, event, applied.accepted, applied.reason))


async def project(conn: AsyncConnection, batch: Batch) -> None:
    batch.decode_all()
    await _load(conn, batch)
    batch.fold()
    await _save(conn, batch)


async def _load(conn: AsyncConnection, batch: Batch) -> None:
    wanted: dict[str, set[str]] = {"run": set(), "experiment": set(), "block": set()}
    docs: set[tuple[str, str]] = set()
    for _, event, _ in batch.events:
        if event is None:
            continue
        wanted[AGGREGATE_KIND[event.type]].add(event.aggregate_id)
        document_id = getattr(event.payload, "document_id", None)
        if document_id:
            docs.add((event.aggregate_id, document_id))
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


async def _save(conn: AsyncConnection, batch: Batch) -> None:
    for (kind, agg_id), state in batch.states.items():
        if state is None or state is batch.loaded.get((kind, agg_id)):
            continue
        exists = (kind, agg_id) in batch.loaded
        await _SAVERS[kind](conn, batch, agg_id, state, exists)
    if batch.index_rows:
        await conn.execute(insert(event_index), batch.index_rows)
    await _save_targets(conn, batch)
    dead = [_dead_row(batch.projection, r, reason) for r, e, reason in batch.events if e is None]
    if dead:
        batch.poison = len(dead)
        await conn.execute(insert(dead_letters), dead)


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


async def _save_targets(conn: AsyncConnection, batch: Batch) -> None:
    rows = []
    for run_id, doc_id in batch.finished:
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
    return dict(
        partition=record.partition, offset=record.offset, event_id=str(event.event_id),
        aggregate_id=event.aggregate_id, org_id=event.org_id, type=event.type,
        occurred_at=event.occurred_at, producer=event.producer, accepted=accepted, reason=reason,
        body=event.model_dump(mode="json"),
    )


def _dead_row(projection: str, record: Record, reason: str) -> dict:
    return dict(projection=projection, partition=record.partition, offset=record.offset,
                key=record.key, reason=reason, value=record.value)
