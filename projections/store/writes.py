"""A folded batch's rows, ready to write: built by `prepare` (pure CPU, no I/O, picklable,
so it can run in the fold's process pool) and executed by `execute` (I/O only).

Every JSON column is serialised here (`JsonText`, written as is by the engine), so the
event loop that runs `execute` does no per-row encoding. Rows are kept per aggregate:
the usual write is one statement per table for the whole batch (a multi-row INSERT, an
executemany of one compiled UPDATE), and the rare isolated write (after a store error)
replays one aggregate's statements inside its savepoint.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, NamedTuple

import orjson
from sqlalchemy import and_, bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from events import keys
from events.log import Record
from projections.domain.state import DocumentState, RunState
from projections.store import database, serialize as ser
from projections.store.database import JsonText, dumps
from projections.store.read_columns import block_columns, experiment_columns, render, run_columns, run_filenames
from projections.store.tables import (
    blocks, document_targets, event_deliveries, event_index, experiments, history_heads, run_documents, run_snapshots,
    runs
)
from projections.store.target_labels import label_hash

Key = tuple[str, str]  # (kind, aggregate id)

# Tables in write order, each with the UPDATE every changed row of it goes through
# (one compiled statement, executed with a list of parameter sets: an executemany).
TABLES = {"experiments": experiments, "blocks": blocks, "runs": runs, "run_documents": run_documents,
          "event_index": event_index, "document_targets": document_targets,
          # a run's history (projections/runtime/history_index.py)
          "event_deliveries": event_deliveries, "history_heads": history_heads, "run_snapshots": run_snapshots}
_UPDATES = {
    "experiments": update(experiments).where(experiments.c.experiment_id == bindparam("k_id")),
    "blocks": update(blocks).where(blocks.c.block_key == bindparam("k_id")),
    "runs": update(runs).where(runs.c.run_id == bindparam("k_id")),
    "run_documents": update(run_documents).where(and_(
        run_documents.c.run_id == bindparam("k_id"), run_documents.c.document_id == bindparam("k_document_id"))),
    "event_index": update(event_index).where(and_(  # a repeated delivery, counted on its event's row
        event_index.c.partition == bindparam("k_partition"), event_index.c.offset == bindparam("k_offset"))),
    "history_heads": update(history_heads).where(history_heads.c.aggregate_id == bindparam("k_id")),
}


class Owner(NamedTuple):
    """An aggregate's organisation, in the shape quarantine.park reads events in."""

    aggregate_id: str
    org_id: str


@dataclass
class AggregateWrites:
    records: list[Record]  # its records in this batch: parked if the store refuses them
    inserts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    updates: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def insert(self, table: str, rows: Iterable[dict[str, Any]]) -> None:
        self.inserts.setdefault(table, []).extend(rows)

    def update(self, table: str, row: dict[str, Any]) -> None:
        self.updates.setdefault(table, []).append(row)


@dataclass
class Writes:
    """Everything `save` writes for one batch; no fold state, no decoded event."""

    aggregates: dict[Key, AggregateWrites] = field(default_factory=dict)
    dead: list[dict[str, Any]] = field(default_factory=list)
    owners: list[tuple[None, Owner, None]] = field(default_factory=list)


async def execute(conn: AsyncConnection, aggregates: Iterable[AggregateWrites]) -> None:
    """One INSERT and one UPDATE statement per table for all of `aggregates` together."""
    if conn.dialect._json_serializer is not database.JSON_CODEC["json_serializer"]:
        raise RuntimeError("prepared JSON needs an engine from projections.store.database.make_engine")
    inserts: dict[str, list] = {}
    updates: dict[str, list] = {}
    for writes in aggregates:
        for name, rows in writes.inserts.items():
            inserts.setdefault(name, []).extend(rows)
        for name, rows in writes.updates.items():
            updates.setdefault(name, []).extend(rows)
    for name, table in TABLES.items():
        if inserts.get(name):
            await conn.execute(insert(table), inserts[name])
        if updates.get(name):
            await conn.execute(_UPDATES[name], updates[name])


def json_text(value: Any) -> JsonText | None:
    """None stays None: the column type decides how a JSON null is stored, as before."""
    return None if value is None else dumps(value)


def run_writes(writes: AggregateWrites, run: RunState, exists: bool, loaded_docs: dict) -> None:
    """The run's row and its changed document rows (a document is unchanged when the fold
    left the very object that was loaded)."""
    values = dict(status=run.status, started_at=run.started_at, completed_at=run.completed_at,
                  score=run.score, state=json_text(ser.run_to_json(run)))
    values.update(run_columns(run))  # the API's read columns (runs.resource, runs.summary)
    if exists:
        writes.update("runs", dict(values, k_id=run.run_id))
    else:
        once = dict(spec=json_text(run.spec), filenames=render(run_filenames(run)))  # fixed by the spec
        writes.insert("runs", [run_row(run, dict(values, **once))])
    for doc_id, doc in run.documents.items():
        original = loaded_docs.get((run.run_id, doc_id))
        if doc is original:
            continue
        values = dict(status=doc.status, score=doc.score, state=document_json(doc))
        if original is None and not exists:
            writes.insert("run_documents", [document_row(run, doc, values)])
        else:
            writes.update("run_documents", dict(values, k_id=run.run_id, k_document_id=doc_id))


def document_json(doc: DocumentState) -> JsonText:
    """`serialize.document_to_json(doc)` as JSON text, encoded by orjson straight from the
    dataclass (a third of the time): the same fields, datetimes in ISO form, pass indexes
    as keys (passes in fold order, not sorted: an object's key order carries nothing)."""
    try:
        return JsonText(orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS).decode())
    except TypeError:  # what only the general path writes (see database._dumps)
        return dumps(ser.document_to_json(doc))


def run_row(run: RunState, values: dict[str, Any]) -> dict[str, Any]:
    spec = run.spec
    return dict(run_id=run.run_id, org_id=run.org_id, experiment_id=spec["experiment_id"],
                workflow_id=spec["workflow_id"], block_id=spec["block_id"], trigger_type=spec["trigger_type"],
                created_at=run.created_at, **values)


def result_id(run_id: str, document_id: str) -> str:
    """Unambiguous for any ids (events.keys); the old `{run}/{document}` hash when that was."""
    return "res_" + uuid.uuid5(uuid.NAMESPACE_URL, keys.result_key(run_id, document_id)).hex[:24]


def document_row(run: RunState, doc, values: dict[str, Any]) -> dict[str, Any]:
    return dict(run_id=run.run_id, document_id=doc.document_id, result_id=result_id(run.run_id, doc.document_id),
                org_id=run.org_id, idx=doc.index, **values)


def target_rows(run: RunState, finished: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    rows, block_type = [], run.spec["block_type"]
    for run_id, doc_id in finished:
        for target in (run.documents[doc_id].consensus or {}).get("targets", ()):
            rows.append(dict(run_id=run_id, document_id=doc_id, path=target["path"], score=target["score"],
                             value=json_text(target.get("value")), rows=json_text(target.get("rows", [])),
                             label_hash=label_hash(block_type, target.get("value"))))
    return rows


def experiment_writes(writes: AggregateWrites, experiment_id: str, exp, exists: bool) -> None:
    values = dict(state=json_text(ser.experiment_to_json(exp)), deleted=exp.deleted, **experiment_columns(exp))
    if exists:
        writes.update("experiments", dict(values, k_id=experiment_id))
    else:
        writes.insert("experiments", [dict(experiment_id=experiment_id, org_id=exp.org_id,
                                           workflow_id=exp.workflow_id, block_id=exp.block_id,
                                           created_at=exp.created_at, **values)])


def block_writes(writes: AggregateWrites, key: str, block, exists: bool) -> None:
    values = dict(state=json_text(ser.block_to_json(block)), **block_columns(block))
    if exists:
        writes.update("blocks", dict(values, k_id=key))
    else:
        writes.insert("blocks", [dict(block_key=key, org_id=block.org_id, **values)])
