"""What the metrics views other than the summary read: the rows of the documents and
targets they answer for, never a whole run (docs/api.md, "What a request costs").

- a run's *head*: its stored resource (~1 KB), for the staleness check;
- its aggregate: `runs.state -> metrics` extracted by the database (one value per target
  path and label, whatever the number of documents), never the whole state;
- one document's consensus (`run_documents.state -> consensus`, bounded per document by
  the event contract) and file name;
- one target of one document, or one path's / one label's target rows of a run
  (`document_targets`, indexed by (run_id, path) and (run_id, label_hash)).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.store.read_columns import run_resource
from projections.store.tables import document_targets as dt, event_index, run_documents as rd, runs
from projections.store.target_labels import digest
from projections.store.views import _STATE_IF_NO_RESOURCE, _visible_runs, run_from_row


class RunHead(NamedTuple):
    """A run as the per-document metrics views and result pages read it: `fields` is its
    rendered resource (`read_columns.run_resource`), never its state."""

    run_id: str
    experiment_id: str
    created_at: datetime
    fields: dict[str, Any]

    def staleness(self) -> dict[str, Any]:
        """The part of `read_columns.run_summary` that the staleness check reads."""
        f = self.fields
        return {"run_id": self.run_id, "experiment_id": self.experiment_id, "block_type": f["block_type"],
                "block_execution_fingerprint": f["block_execution_fingerprint"],
                "documents_fingerprint": f["documents_fingerprint"], "status": f["lifecycle"]["status"],
                "created_at": f["timing"]["created_at"], "score": f["score"],
                "completed_document_count": f["completed_document_count"]}


_RUN_HEAD = select(runs.c.run_id, runs.c.experiment_id, runs.c.created_at, runs.c.resource,
                   *_STATE_IF_NO_RESOURCE).where(runs.c.run_id == bindparam("run_id"),
                                                _visible_runs(bindparam("org_id")))


async def get_run_head(conn: AsyncConnection, org_id: str, run_id: str) -> RunHead | None:
    row = (await conn.execute(_RUN_HEAD, {"run_id": run_id, "org_id": org_id})).first()
    if row is None:
        return None
    fields = (orjson.loads(row.resource) if row.resource is not None
              else run_resource(run_from_row(row)))  # a row older than migration 0007
    return RunHead(row.run_id, row.experiment_id, row.created_at, fields)


_METRICS = select(runs.c.state["metrics"]).where(runs.c.run_id == bindparam("run_id"))


async def run_metrics(conn: AsyncConnection, run_id: str) -> dict[str, Any]:
    """The run's aggregate (`RunState.metrics`): the database extracts it from the state."""
    return await conn.scalar(_METRICS, {"run_id": run_id})


class DocumentConsensus(NamedTuple):
    document_id: str
    filename: str
    score: float | None
    consensus: dict[str, Any] | None


_DOCUMENT = select(rd.c.state["filename"].as_string(), rd.c.score).where(
    rd.c.run_id == bindparam("run_id"), rd.c.document_id == bindparam("document_id"))
_CONSENSUS = _DOCUMENT.add_columns(rd.c.state["consensus"])


async def document_consensus(conn: AsyncConnection, run_id: str, document_id: str,
                             with_consensus: bool = True) -> DocumentConsensus | None:
    """One document of the run: its file name, score and (`with_consensus`) consensus
    (targets with their vote rows, confusion), or None when the run has no such document."""
    query = _CONSENSUS if with_consensus else _DOCUMENT
    row = (await conn.execute(query, {"run_id": run_id, "document_id": document_id})).first()
    if row is None:
        return None
    return DocumentConsensus(document_id, row[0], row[1], row[2] if with_consensus else None)


async def document_score(conn: AsyncConnection, run_id: str, document_id: str) -> float | None:
    return await conn.scalar(select(rd.c.score).where(rd.c.run_id == run_id, rd.c.document_id == document_id))


async def target_scores(conn: AsyncConnection, run_id: str, document_id: str) -> dict[str, float]:
    """path -> score of one document's targets."""
    query = select(dt.c.path, dt.c.score).where(dt.c.run_id == run_id, dt.c.document_id == document_id)
    return {path: score for path, score in (await conn.execute(query)).all()}


async def target_votes(conn: AsyncConnection, run_id: str, document_id: str, path: str) -> tuple[float, Any] | None:
    """(score, vote rows) of one target of one document."""
    query = select(dt.c.score, dt.c.rows).where(dt.c.run_id == run_id, dt.c.document_id == document_id,
                                                 dt.c.path == path)
    row = (await conn.execute(query)).first()
    return (row.score, row.rows) if row else None


async def target_score(conn: AsyncConnection, run_id: str, document_id: str, path: str) -> float | None:
    query = select(dt.c.score).where(dt.c.run_id == run_id, dt.c.document_id == document_id, dt.c.path == path)
    return await conn.scalar(query)


class TargetRow(NamedTuple):
    document_id: str
    score: float
    value: Any


async def path_rows(conn: AsyncConnection, run_id: str, path: str, order: dict[str, int]) -> list[TargetRow]:
    """Every document's target at `path`, in the run's document order (`order`: document
    id -> its place in the run, e.g. from the run summary's file names, which are in
    document order: no join with the documents' rows)."""
    query = select(dt.c.document_id, dt.c.score, dt.c.value).where(dt.c.run_id == run_id, dt.c.path == path)
    return sorted((TargetRow(*row) for row in (await conn.execute(query)).all()),
                  key=lambda row: order.get(row.document_id, len(order)))


async def path_scores(conn: AsyncConnection, run_id: str, path: str) -> dict[str, float]:
    """document id -> score of every document's target at `path`."""
    query = select(dt.c.document_id, dt.c.score).where(dt.c.run_id == run_id, dt.c.path == path)
    return {doc: score for doc, score in (await conn.execute(query)).all()}


async def label_scores(conn: AsyncConnection, run_id: str, label: str,
                       order: dict[str, int] | None = None) -> list[tuple[str, float]]:
    """(document id, score) of every target whose consensus is `label` (classifier and
    split runs), in the run's document order (`order`, as `path_rows`; None: any order)."""
    query = select(dt.c.document_id, dt.c.score).where(dt.c.run_id == run_id, dt.c.label_hash == digest(label))
    found = [(doc, score) for doc, score in (await conn.execute(query)).all()]
    return found if order is None else sorted(found, key=lambda row: order.get(row[0], len(order)))


class PassEvent(NamedTuple):
    """The accepted event that carried a pass of a document: where it is on the log."""

    pass_index: int
    partition: int
    offset: int
    type: str

    @property
    def position(self) -> str:
        return f"{self.partition}:{self.offset}"


PASS_EVENTS = ("DocumentPassCompleted", "DocumentPassFailed")
_PASS_FACTS = (select(event_index.c.pass_fact, event_index.c.partition, event_index.c.offset, event_index.c.type)
               .where(event_index.c.aggregate_id == bindparam("run_id"),
                      event_index.c.document_id == bindparam("document_id"), event_index.c.pass_fact.isnot(None)))
_PASS_EVENTS = (select(event_index.c.body[("payload", "pass_index")].as_integer(), event_index.c.partition,
                       event_index.c.offset, event_index.c.type)
                .where(event_index.c.aggregate_id == bindparam("run_id"),
                       event_index.c.document_id == bindparam("document_id"),
                       event_index.c.type.in_(PASS_EVENTS), event_index.c.accepted.is_(True))
                .order_by(event_index.c.offset))


async def pass_events(conn: AsyncConnection, run_id: str, document_id: str) -> dict[int, PassEvent]:
    """pass index -> the event the fold recorded as that pass's fact (`event_index.pass_fact`,
    a partial index: at most n_consensus rows). Rows indexed before migration 0012 have no
    `pass_fact`: then the document's last accepted pass event per pass, from its own rows
    (`ix_event_index_document`: its passes and their retries)."""
    params = {"run_id": run_id, "document_id": document_id}
    found = {row[0]: PassEvent(*row) for row in (await conn.execute(_PASS_FACTS, params)).all()}
    if not found:
        for row in (await conn.execute(_PASS_EVENTS, params)).all():
            found[row[0]] = PassEvent(*row)
    return found
