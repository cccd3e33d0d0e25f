"""Read-model columns the API returns as they are, computed where the rows are written.

The projector already holds a run's whole state when it writes the run's row, so it also
writes the run's resource (the JSON the retab SDK parses, rendered once) into
`runs.resource`. `GET run` and `list runs` then answer that text without decoding the
run's state (~7 KB, most of it the frozen document list) to show ~1 KB.

The metrics summary works the same way: `runs.summary` holds what it shows of the run
(the rendered aggregate, counts, score, fingerprints), `experiments.freshness` and
`blocks.execution` what its staleness check compares against, so the summary decodes no
state at all (services/api/routes/metrics.py; migration 0008). The one part of it that
grows with the run, its documents' filenames, never changes: `runs.filenames` holds it,
rendered once when the row is first written (migration 0016), so a batch that touches a
run of 2,000 documents does not render and write its 52 KB of filenames again.

Pure: no I/O, picklable, so it runs wherever the batch's rows are prepared (the fold's
process pool included). Everything here is a function of the run's state alone, so a
replay writes the very same text, and `state_hash` leaves these columns out (they add
nothing the `state` column does not already hold).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from projections.domain import aggregate
from projections.domain.consensus import ENGINE_VERSION
from projections.domain.fingerprints import documents_fingerprint, metrics_validity_fingerprint
from projections.domain.state import BlockState, ExperimentState, RunState

# Read columns derived from what the row (or its run, its documents, or its event) already
# holds, per table: state_hash skips them; verify compares them; NULL: not written yet (a row
# older than the column), read the long way. `runs.passes` is counted from its documents'
# states (row_versions.py); document_targets.label_hash and event_index.document_id are index
# keys (migration 0011).
DERIVED = {"runs": ("resource", "summary", "passes", "filenames"), "experiments": ("freshness", "card"),
           "blocks": ("execution",), "document_targets": ("label_hash",), "event_index": ("document_id",)}


def run_columns(run: RunState) -> dict[str, Any]:
    """The extra values of the run's row in `runs`."""
    return {"resource": render(run_resource(run)), "summary": render(run_summary(run))}


def experiment_columns(exp: ExperimentState) -> dict[str, Any]:
    freshness = experiment_freshness(exp)
    return {"freshness": render(freshness), "card": render(experiment_card(exp, freshness))}


def block_columns(block: BlockState) -> dict[str, Any]:
    return {"execution": render(block_execution(block))}


def render(resource: dict[str, Any]) -> str:
    return orjson.dumps(resource).decode()


def run_resource(run: RunState) -> dict[str, Any]:
    """The schema's flat fields and, beside them, the Create Experiment Run page's
    example shape (`workflow: {workflow_id, version_id}`, `block_kind`)."""
    spec = run.spec
    fingerprint = spec["block_execution_fingerprint"]
    return {
        "id": run.run_id,
        "object": "experiment_run",
        "workflow_id": spec["workflow_id"],
        "workflow_version_id": spec["workflow_version_id"],
        "workflow": {"workflow_id": spec["workflow_id"], "version_id": spec["workflow_version_id"]},
        "trigger": {"type": spec["trigger_type"]},
        "experiment_id": spec["experiment_id"],
        "block_id": spec["block_id"],
        "block_type": spec["block_type"],
        "block_kind": spec["block_type"],
        "n_consensus": run.n_consensus,
        "lifecycle": lifecycle(run.status, run.error, run.cancel_reason),
        "timing": {"created_at": _iso(run.created_at), "started_at": _iso(run.started_at),
                   "completed_at": _iso(run.completed_at), "duration_ms": run.duration_ms},
        "parent_run_id": spec.get("parent_run_id"),
        "block_version_id": spec["block_version_id"],
        "metrics_validity_fingerprint": metrics_validity_fingerprint(fingerprint, spec["documents_fingerprint"]),
        "metrics_validity_fingerprint_version": ENGINE_VERSION,
        "block_execution_fingerprint": fingerprint,
        "definition_fingerprint": fingerprint,
        "documents_fingerprint": spec["documents_fingerprint"],
        "score": run.score,
        "total_document_count": run.total_document_count,
        "completed_document_count": run.completed_document_count,
        "document_count": run.document_count,
        "error_count": run.error_count,
    }


def run_summary(run: RunState) -> dict[str, Any]:
    """What a metrics summary (and its staleness check) reads of the run, but its
    filenames (`run_filenames`): a few hundred bytes, whatever the run's size."""
    spec = run.spec
    return {
        "run_id": run.run_id,
        "experiment_id": spec["experiment_id"],
        "block_type": spec["block_type"],
        "block_execution_fingerprint": spec["block_execution_fingerprint"],
        "documents_fingerprint": spec["documents_fingerprint"],
        "status": run.status,
        "created_at": run.created_at.isoformat(),
        "score": run.score,
        "completed_document_count": run.completed_document_count,
        "total_document_count": run.total_document_count,
        "aggregate": aggregate.summary(spec["block_type"], run.metrics),
    }


def run_filenames(run: RunState) -> dict[str, str]:
    """The run's documents' filenames by id, in document order (`runs.filenames`): a few
    dozen bytes a document, fixed by the run's spec."""
    return filenames_of(run.spec)


def filenames_of(spec: dict[str, Any]) -> dict[str, str]:
    return {d["document_id"]: d["filename"] for d in spec.get("documents", ())}


def experiment_freshness(exp: ExperimentState) -> dict[str, Any]:
    """What a run is compared with to tell whether it measured the experiment as it is now
    (the block's half is `block_execution`)."""
    return {"documents_fingerprint": documents_fingerprint([d["document_id"] for d in exp.documents]),
            "n_consensus": exp.n_consensus}


def experiment_card(exp: ExperimentState, freshness: dict[str, Any] | None = None) -> dict[str, Any]:
    """The experiment's own fields of its resource, without the document list (which is
    most of its state: up to 768 KiB), so a page of experiments decodes no document list."""
    return {"id": exp.experiment_id, "workflow_id": exp.workflow_id, "block_id": exp.block_id,
            "n_consensus": exp.n_consensus, "document_count": len(exp.documents), "name": exp.name,
            "created_at": _iso(exp.created_at), "updated_at": _iso(exp.updated_at),
            "source_experiment_id": exp.source_experiment_id, **(freshness or experiment_freshness(exp))}


def block_execution(block: BlockState | None) -> dict[str, Any] | None:
    """The block's current type and configuration; None before its first definition."""
    current = block.current if block else None
    return {"block_type": current.block_type, "config": current.config} if current else None


def lifecycle(status: str, error: dict | None = None, reason: str | None = None) -> dict[str, Any]:
    if status == "error":
        error = error or {}
        return {"status": "error", "message": error.get("message") or "(no message)",
                "details": {"message": error.get("message"), "error_code": error.get("code")}}
    if status == "cancelled":
        return {"status": "cancelled", "reason": reason}
    return {"status": status}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
