"""One run's rows, read from the read model or derived afresh from its own events.

`refold` replays a run's records (read from the log at the positions the event index
lists) through the projector's own batch fold, and `derived_rows` lays the result out exactly as the projector's batch writes
it, so the two can be compared row by row (`projections.runtime.verify`). Cost: one fold of
the run's events, consensus included for every finished document, so it runs in a
CLI process or a worker thread, never on an API event loop.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from events.log import EventLog, Position, Record
from projections.domain.state import RunState
from projections.runtime.batch import Batch, result_id
from projections.store import serialize as ser
from projections.store.read_columns import run_columns
from projections.store.tables import document_targets, event_index, run_documents, runs

# Per table: the run's rows are keyed (and ordered) by these columns.
RUN_TABLES = {
    "runs": (runs, ("run_id",)),
    "run_documents": (run_documents, ("document_id",)),
    "document_targets": (document_targets, ("document_id", "path")),
    "event_index": (event_index, ("partition", "offset")),
}


@dataclass
class Refolded:
    state: RunState | None
    index: list[dict[str, Any]] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    failure: str | None = None  # the fold raised (the run would be quarantined)


async def live_rows(conn: AsyncConnection, run_id: str) -> dict[str, list[dict[str, Any]]]:
    rows = {}
    for name, (table, key) in RUN_TABLES.items():
        id_column = table.c.aggregate_id if name == "event_index" else table.c.run_id
        query = select(table).where(id_column == run_id).order_by(*(table.c[k] for k in key))
        rows[name] = [dict(r._mapping) for r in (await conn.execute(query)).all()]
    return rows


async def stored_positions(conn: AsyncConnection, run_id: str) -> list[Position]:
    """Where the run's events are on the log, as the event index says, in log order."""
    query = (select(event_index.c.partition, event_index.c.offset)
             .where(event_index.c.aggregate_id == run_id).order_by(event_index.c.offset))
    return [Position(p, o) for p, o in (await conn.execute(query)).all()]


async def read_records(log: EventLog, positions: list[Position]) -> list[Record]:
    """The run's records themselves, from the log (the source of truth, append times included)."""
    records = []
    for position in positions:
        found = await log.read(position.partition, position.offset, 1)
        if not found or found[0].offset != position.offset:
            raise LookupError(f"the log has no record at {position.token()}")
        records.append(found[0])
    return records


def refold(run_id: str, records: list[Record], projection: str = "main") -> Refolded:
    """Fold the run's records from nothing, exactly as the projector's batch folds them."""
    batch = Batch(projection, records)
    batch.decode_all()
    batch.fold()
    key = ("run", run_id)
    index = [{**row, "body": _parsed(row["body"])} for row in batch.index_rows.get(key, [])]  # as the store gives it
    return Refolded(batch.states.get(key), index,
                    [doc for _, doc in batch.finished.get(key, [])], batch.failures.get(key))


def _parsed(body: Any) -> Any:
    return orjson.loads(str(body)) if isinstance(body, str) else body  # str(): orjson takes no subclass


def derived_rows(refolded: Refolded) -> dict[str, list[dict[str, Any]]]:
    run = refolded.state
    rows: dict[str, list[dict[str, Any]]] = {"runs": [], "run_documents": [], "document_targets": [],
                                             "event_index": refolded.index}
    if run is None:
        return rows
    spec = run.spec
    rows["runs"].append(dict(
        run_id=run.run_id, org_id=run.org_id, experiment_id=spec["experiment_id"],
        workflow_id=spec["workflow_id"], block_id=spec["block_id"], trigger_type=spec["trigger_type"],
        status=run.status, created_at=run.created_at, started_at=run.started_at,
        completed_at=run.completed_at, score=run.score, state=ser.run_to_json(run), **run_columns(run),
    ))
    for doc_id, doc in sorted(run.documents.items()):
        rows["run_documents"].append(dict(
            run_id=run.run_id, document_id=doc_id, result_id=result_id(run.run_id, doc_id),
            org_id=run.org_id, idx=doc.index, status=doc.status, score=doc.score,
            state=ser.document_to_json(doc),
        ))
    for doc_id in sorted(set(refolded.finished)):
        for target in (run.documents[doc_id].consensus or {}).get("targets", ()):
            rows["document_targets"].append(dict(
                run_id=run.run_id, document_id=doc_id, path=target["path"], score=target["score"],
                value=target.get("value"), rows=target.get("rows", []),
            ))
    rows["document_targets"].sort(key=lambda r: (r["document_id"], r["path"]))
    return rows
