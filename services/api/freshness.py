"""Is an experiment's latest run still a measurement of its current definition?"""
from __future__ import annotations

from typing import Any

from projections.state import BlockState, ExperimentState, RunState

from .. import fingerprints as fp


def current_fingerprints(exp: ExperimentState, block: BlockState | None) -> tuple[str | None, str]:
    docs = fp.documents_fingerprint([d["document_id"] for d in exp.documents])
    current = block.current if block else None
    if current is None:
        return None, docs
    return fp.execution_fingerprint(current.block_type, dict(current.config), exp.n_consensus), docs


def stale_reasons(exp: ExperimentState, block: BlockState | None, run: RunState) -> list[str]:
    execution, docs = current_fingerprints(exp, block)
    reasons = []
    if execution != run.spec["block_execution_fingerprint"]:
        reasons.append("block_changed")
    if docs != run.spec["documents_fingerprint"]:
        reasons.append("documents_changed")
    return reasons


def freshness(exp: ExperimentState, block: BlockState | None, last: RunState | None) -> dict[str, Any]:
    execution, docs = current_fingerprints(exp, block)
    if last is None:
        state, reasons, api_reasons = "unknown", [], ["no_baseline"]
    else:
        reasons = stale_reasons(exp, block, last)
        state = "stale" if reasons else "fresh"
        api_reasons = (["validity_changed"] if "block_changed" in reasons else []) + (
            ["inputs_changed"] if "documents_changed" in reasons else [])
    validity = fp.metrics_validity_fingerprint(execution, docs) if execution else None
    rerun = "run" if state != "fresh" or (last and last.status in ("error", "cancelled")) else "noop"
    if last is not None and last.status in ("pending", "queued", "running"):
        rerun = "conflict"
    return {
        "is_stale": state == "stale",
        "freshness_state": state,
        "freshness_reasons": reasons,
        "freshness": {"status": state, "reasons": api_reasons, "validity_fingerprint": validity,
                      "input_fingerprint": docs, "baseline_run_id": last.run_id if last else None},
        "run_plan_mode": rerun,
        "rerunnable_document_count": len(exp.documents) if rerun == "run" else 0,
        "schema_drift": "none" if block else "unknown",
        "drift": {"status": "none" if block else "unknown", "affected_targets": [], "detail": None},
        "current_block_execution_fingerprint": execution,
    }
