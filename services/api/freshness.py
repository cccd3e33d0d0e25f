"""Is an experiment's latest run still a measurement of its current definition?"""
from __future__ import annotations

from typing import Any, Mapping

from projections.domain.state import BlockState, ExperimentState, RunState
from projections.store.read_columns import block_execution, experiment_freshness
from projections.store.views import LatestRun

from .. import fingerprints as fp

Fingerprints = tuple[str | None, str]  # the block's current execution (None: undefined), the documents'


def current_fingerprints(exp: ExperimentState, block: BlockState | None) -> Fingerprints:
    return fingerprints_of(experiment_freshness(exp), block_execution(block))


def fingerprints_of(experiment: Mapping[str, Any], block: Mapping[str, Any] | None) -> Fingerprints:
    """From `read_columns.experiment_freshness` and `block_execution` (as stored or derived)."""
    docs = experiment["documents_fingerprint"]
    if block is None:
        return None, docs
    return fp.execution_fingerprint(block["block_type"], dict(block["config"]), experiment["n_consensus"]), docs


def stale_reasons(exp: ExperimentState, block: BlockState | None, run: RunState) -> list[str]:
    return stale_reasons_of(current_fingerprints(exp, block), run.spec)


def stale_reasons_of(current: Fingerprints, run: Mapping[str, Any]) -> list[str]:
    """Why a run (its spec, or `read_columns.run_summary`) no longer measures the current definition."""
    execution, docs = current
    found = []
    if execution != run["block_execution_fingerprint"]:
        found.append("block_changed")
    if docs != run["documents_fingerprint"]:
        found.append("documents_changed")
    return found


def freshness(exp: ExperimentState, block: BlockState | None, last: RunState | None) -> dict[str, Any]:
    latest = None if last is None else LatestRun(last.run_id, last.status, last.spec["block_execution_fingerprint"],
                                                 last.spec["documents_fingerprint"])
    return freshness_of(experiment_freshness(exp), block_execution(block), len(exp.documents), latest)


def freshness_of(experiment: Mapping[str, Any], block: Mapping[str, Any] | None, document_count: int,
                 last: LatestRun | None) -> dict[str, Any]:
    """The experiment's freshness fields, from `read_columns.experiment_freshness` (or its
    card), `block_execution` and its latest run: no state needed."""
    execution, docs = fingerprints_of(experiment, block)
    if last is None:
        state, reasons, api_reasons = "unknown", [], ["no_baseline"]
    else:
        reasons = stale_reasons_of((execution, docs), last._asdict())
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
        "rerunnable_document_count": document_count if rerun == "run" else 0,
        "schema_drift": "none" if block else "unknown",
        "drift": {"status": "none" if block else "unknown", "affected_targets": [], "detail": None},
        "current_block_execution_fingerprint": execution,
    }
