"""Read-model state -> the JSON resources the retab SDK parses."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from projections.domain.state import DOC_TERMINAL, BlockState, DocumentState, ExperimentState, RunState
from projections.runtime.batch import result_id
from projections.store.views import ResultDocument
from projections.store.read_columns import (  # noqa: F401 - run_resource: rendered where the rows are written
    block_execution, experiment_card, lifecycle, run_resource
)

_EXPERIMENT_STATUS = {"pending": "processing", "queued": "processing", "running": "processing",
                      "completed": "completed", "error": "failed", "cancelled": "cancelled"}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def document_status(doc: DocumentState, run_status: str) -> str:
    """A document's own status, seen through its run: queued with a queued run,
    cancelled when the run ended before the document did."""
    if doc.status in DOC_TERMINAL:
        return doc.status
    if run_status in ("cancelled", "error"):
        return "cancelled"
    if doc.status == "pending" and run_status in ("queued", "running"):
        return "queued"
    return doc.status


@dataclass(frozen=True)
class ResultRun:
    """What a result shows of its run, read from the run's stored resource (no state)."""

    run_id: str
    status: str
    cancel_reason: str | None
    created_at: datetime
    completed_at: datetime | None
    spec: dict[str, Any]  # experiment_id and block_type, as a run's spec names them

    @classmethod
    def of(cls, run_id: str, resource: dict[str, Any]) -> ResultRun:
        lifecycle_, timing = resource["lifecycle"], resource["timing"]
        completed = timing["completed_at"]
        return cls(run_id, lifecycle_["status"], lifecycle_.get("reason"), datetime.fromisoformat(timing["created_at"]),
                   datetime.fromisoformat(completed) if completed else None,
                   {"experiment_id": resource["experiment_id"], "block_type": resource["block_type"]})


def result_resource(run: RunState | ResultRun, doc: DocumentState | ResultDocument,
                    stored_id: str | None = None) -> dict[str, Any]:
    """`doc`: a state, or what a page of results read of one (`views.result_documents`);
    `stored_id`: the row's result id when the caller has it (else derived: a hash)."""
    status = document_status(doc, run.status)
    reason = run.cancel_reason if status == "cancelled" else None
    error = doc.last_error if status == "error" else None
    consensus = (doc.consensus or {}).get("value") if doc.consensus else None
    outputs = {"output": {"type": "json", "data": consensus}} if doc.consensus else {}
    completed = doc.completed_at or (run.completed_at if status == "cancelled" else None)
    duration = None
    if completed and doc.started_at:  # never negative: a retry may be timed after a cancel
        duration = max(0, int((completed - doc.started_at).total_seconds() * 1000))
    return {
        "id": stored_id or result_id(run.run_id, doc.document_id),
        "object": "experiment_result",
        "experiment_run_id": run.run_id,
        "experiment_id": run.spec["experiment_id"],
        "document_id": doc.document_id,
        "filename": doc.filename,
        "lifecycle": lifecycle(status, error, reason),
        "timing": {"created_at": _iso(run.created_at), "started_at": _iso(doc.started_at),
                   "completed_at": _iso(completed), "duration_ms": duration},
        "block_type": run.spec["block_type"],
        "handle_inputs": doc.handle_inputs,
        "handle_outputs": outputs,
        "attempt": doc.attempt,
        "score": doc.score,
        "passes": {str(i): {"status": p.status, "attempt": p.attempt} for i, p in sorted(doc.passes.items())},
    }


def experiment_resource(exp: ExperimentState, block: BlockState | None, last: RunState | None,
                        scored: RunState | None, freshness: dict[str, Any]) -> dict[str, Any]:
    """`last` is the latest run (status); `scored` the latest completed one (score)."""
    return experiment_resource_of(
        experiment_card(exp), block_execution(block), last.run_id if last else None, last.status if last else None,
        scored.score if scored else None, freshness, list(exp.documents))


def experiment_resource_of(card: dict[str, Any], block: dict[str, Any] | None, last_run_id: str | None,
                           last_status: str | None, score: float | None, freshness: dict[str, Any],
                           documents: list | None) -> dict[str, Any]:
    """From the experiment's card (`read_columns.experiment_card`), its block's
    `block_execution`, its latest run and the score of its latest completed one.
    `documents` None: the resource without its document list (the console's pages)."""
    resource = {
        "id": card["id"],
        "object": "experiment",
        "workflow_id": card["workflow_id"],
        "block_id": card["block_id"],
        "n_consensus": card["n_consensus"],
        "document_count": card["document_count"],
        "name": card["name"],
        "last_run_id": last_run_id,
        "created_at": card["created_at"],
        "updated_at": card["updated_at"],
        "status": _EXPERIMENT_STATUS[last_status] if last_status else "draft",
        "block_type": block["block_type"] if block else "extract",
        "score": score,
        "documents": documents,
        "source_experiment_id": card["source_experiment_id"],
        **freshness,
    }
    if documents is None:
        del resource["documents"]
    return resource
