"""Read-model state -> the JSON resources the retab SDK parses."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from projections.domain.state import DOC_TERMINAL, BlockState, DocumentState, ExperimentState, RunState
from projections.runtime.batch import result_id
from projections.store.read_columns import lifecycle, run_resource  # noqa: F401 - rendered where the rows are written

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


def result_resource(run: RunState, doc: DocumentState) -> dict[str, Any]:
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
        "id": result_id(run.run_id, doc.document_id),
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
    return {
        "id": exp.experiment_id,
        "object": "experiment",
        "workflow_id": exp.workflow_id,
        "block_id": exp.block_id,
        "n_consensus": exp.n_consensus,
        "document_count": len(exp.documents),
        "name": exp.name,
        "last_run_id": last.run_id if last else None,
        "created_at": _iso(exp.created_at),
        "updated_at": _iso(exp.updated_at),
        "status": _EXPERIMENT_STATUS[last.status] if last else "draft",
        "block_type": block.current.block_type if block and block.current else "extract",
        "score": scored.score if scored else None,
        "documents": list(exp.documents),
        "source_experiment_id": exp.source_experiment_id,
        **freshness,
    }
