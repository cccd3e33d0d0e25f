"""Fold state <-> JSON column values. Datetimes as ISO strings; pass indexes as keys."""
from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

from projections.domain.state import BlockState, BlockVersion, DocumentState, ExperimentState, PassFact, RunState

_RUN_SCALARS = [f.name for f in fields(RunState) if f.name not in ("documents", "spec")]


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def pass_to_json(fact: PassFact) -> dict[str, Any]:
    return {
        "status": fact.status, "attempt": fact.attempt, "occurred_at": _ts(fact.occurred_at),
        "output": fact.output, "error": fact.error, "duration_ms": fact.duration_ms,
    }


def pass_from_json(data: dict[str, Any]) -> PassFact:
    return PassFact(**{**data, "occurred_at": _dt(data["occurred_at"])})


def document_to_json(doc: DocumentState) -> dict[str, Any]:
    return {
        "document_id": doc.document_id, "index": doc.index, "filename": doc.filename,
        "handle_inputs": doc.handle_inputs, "status": doc.status,
        "passes": {str(i): pass_to_json(p) for i, p in sorted(doc.passes.items())},
        "attempt": doc.attempt, "last_error": doc.last_error,
        "last_error_key": list(doc.last_error_key) if doc.last_error_key else None, "started_at": _ts(doc.started_at),
        "completed_at": _ts(doc.completed_at), "score": doc.score, "consensus": doc.consensus,
    }


def document_from_json(data: dict[str, Any]) -> DocumentState:
    return DocumentState(**{
        **data,
        "passes": {int(i): pass_from_json(p) for i, p in data["passes"].items()},
        "last_error_key": tuple(data["last_error_key"]) if data.get("last_error_key") else None,
        "started_at": _dt(data["started_at"]),
        "completed_at": _dt(data["completed_at"]),
    })


def run_to_json(run: RunState) -> dict[str, Any]:
    """The run-level state that changes: documents are stored in their own rows, the spec
    (the RunCreated payload) once in `runs.spec`."""
    data = {name: getattr(run, name) for name in _RUN_SCALARS}
    for name in ("created_at", "started_at", "completed_at", "latest_fact_at"):
        data[name] = _ts(data[name])
    return data


def run_from_json(data: dict[str, Any], documents: dict[str, DocumentState],
                  spec: dict[str, Any] | None = None) -> RunState:
    """`spec`: the row's `runs.spec`; a state written before migration 0015 holds its own."""
    values = dict(data)
    for name in ("created_at", "started_at", "completed_at", "latest_fact_at"):
        values[name] = _dt(values[name])
    if spec is not None:
        values["spec"] = spec
    return RunState(**values, documents=documents)


def experiment_to_json(exp: ExperimentState) -> dict[str, Any]:
    data = {f.name: getattr(exp, f.name) for f in fields(ExperimentState)}
    data["created_at"], data["updated_at"] = _ts(exp.created_at), _ts(exp.updated_at)
    data["documents"] = list(exp.documents)
    return data


def experiment_from_json(data: dict[str, Any]) -> ExperimentState:
    return ExperimentState(**{
        **data, "documents": tuple(data["documents"]),
        "created_at": _dt(data["created_at"]), "updated_at": _dt(data["updated_at"]),
    })


def block_to_json(block: BlockState) -> dict[str, Any]:
    versions = [{**{f.name: getattr(v, f.name) for f in fields(BlockVersion)}, "defined_at": _ts(v.defined_at)}
                for v in block.versions]
    return {"org_id": block.org_id, "workflow_id": block.workflow_id, "block_id": block.block_id,
            "versions": versions}


def block_from_json(data: dict[str, Any]) -> BlockState:
    versions = tuple(BlockVersion(**{**v, "defined_at": _dt(v["defined_at"])}) for v in data["versions"])
    return BlockState(data["org_id"], data["workflow_id"], data["block_id"], versions)
