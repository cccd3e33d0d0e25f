"""The four metrics views (summary, by_document, by_target, votes) and their two
non-answers (stale_metrics, no_metrics), shaped as the retab SDK parses them.

The summary reads no state: `SummaryInput` holds the read columns the projector wrote
(projections/store/read_columns.py). The other views are shaped from the rows of the
documents and targets they answer for (projections/store/metric_rows.py; the reads
themselves are in services/api/routes/metrics.py)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from projections.domain import aggregate
from projections.domain.aggregate import LABEL_BLOCKS
from projections.store.metric_rows import DocumentConsensus, TargetRow
from projections.store.views import DocumentScore, RunScore

from .errors import invalid, not_found
from .freshness import Fingerprints, stale_reasons_of


@dataclass
class SummaryInput:
    """`run` is `read_columns.run_summary`; `current` the experiment's current fingerprints."""

    run: Mapping[str, Any]
    current: Fingerprints
    documents: list[DocumentScore]
    prior: RunScore | None = None
    prior_documents: dict[str, DocumentScore] = field(default_factory=dict)
    page: Any = None  # the documents' page (pagination.Page) when only one page was read

    def prior_score(self, document_id: str) -> float | None:
        doc = self.prior_documents.get(document_id)
        return doc.score if doc else None


def stale_or_missing(run: Mapping[str, Any], current: Fingerprints) -> dict[str, Any] | None:
    """`run`: `read_columns.run_summary` (or `RunHead.staleness()`); `current`: the experiment's fingerprints."""
    reasons = stale_reasons_of(current, run)
    if reasons:
        return {
            "kind": "stale_metrics", "error": "stale_metrics", "experiment_id": run["experiment_id"],
            "stale_reasons": reasons, "current_block_execution_fingerprint": current[0],
            "last_run": {"run_id": run["run_id"], "block_execution_fingerprint": run["block_execution_fingerprint"],
                         "score": run["score"], "created_at": run["created_at"]},
            "message": f"run {run['run_id']} measured an earlier definition of the experiment "
                       f"({', '.join(reasons)}); start a new run, or pass allow_stale=true to read it anyway",
        }
    if not run["completed_document_count"]:
        return no_metrics(run["experiment_id"], f"no document of run {run['run_id']} has been scored yet "
                                                f"(status {run['status']})")
    return None


def stale_answer(run: Mapping[str, Any], current: Fingerprints, allow_stale: bool) -> dict[str, Any] | None:
    """The non-answer to give instead of a view, if any: `allow_stale` reads a stale run anyway."""
    problem = stale_or_missing(run, current)
    if problem and not (allow_stale and problem["kind"] == "stale_metrics"):
        return problem
    return None


def no_metrics(experiment_id: str, message: str) -> dict[str, Any]:
    return {"kind": "no_metrics", "error": "no_metrics", "experiment_id": experiment_id, "message": message}


def summary(data: SummaryInput) -> dict[str, Any]:
    run = data.run
    documents = [{"id": d.document_id, "filename": d.filename, "score": d.score,
                  "prior_score": data.prior_score(d.document_id)}
                 for d in data.documents if d.status == "completed"]
    return {
        "experiment_id": run["experiment_id"], "run_id": run["run_id"], "kind": "summary", "view": "summary",
        "block_execution_fingerprint": run["block_execution_fingerprint"], "block_type": run["block_type"],
        "score": run["score"], "prior_score": data.prior.score if data.prior else None,
        "prior_run_id": data.prior.run_id if data.prior else None,
        "documents": documents, "scored_document_count": run["completed_document_count"],
        "total_document_count": run["total_document_count"], "aggregate": run["aggregate"],
    }


def by_document(run_id: str, doc: DocumentConsensus, prior_score: float | None,
                prior_targets: Mapping[str, float]) -> dict[str, Any]:
    """One document: its targets (consensus order) and confusion; `prior_targets` are the
    prior run's target scores of the same document."""
    consensus = doc.consensus or {}
    targets = [{"path": t["path"], "score": t["score"], "value": t["value"], "prior_score": prior_targets.get(t["path"])}
               for t in consensus.get("targets", ())]
    return {
        "run_id": run_id, "kind": "by_document", "view": "by_document",
        "document": {"id": doc.document_id, "filename": doc.filename},
        "score": doc.score, "prior_score": prior_score,
        "confusion": _plain_confusion(consensus.get("confusion")), "targets": targets,
    }


def by_target(run: Mapping[str, Any], path: str, rows: list[TargetRow], metrics: Mapping[str, Any],
              prior_metrics: Mapping[str, Any] | None, prior_scores: Mapping[str, float]) -> dict[str, Any]:
    """A target path: every document's target there (`rows`, in document order) and the
    run's likelihood of it. `run` is `read_columns.run_summary`."""
    filenames = run["filenames"]
    documents = [{"id": r.document_id, "filename": filenames.get(r.document_id, ""), "score": r.score,
                  "value": r.value, "prior_score": prior_scores.get(r.document_id)} for r in rows]
    likelihoods = aggregate.likelihoods(metrics)
    if path not in likelihoods and not documents:
        raise not_found("target", path)
    prior = aggregate.likelihoods(prior_metrics).get(path) if prior_metrics is not None else None
    return {
        "run_id": run["run_id"], "kind": "by_target", "view": "by_target", "target": path,
        "score": likelihoods.get(path), "prior_score": prior,
        "confusion": _label_slice(run["block_type"], metrics, path), "documents": documents,
    }


def label_target(run: Mapping[str, Any], label: str, own: list[tuple[str, float]],
                 prior: list[tuple[str, float]], confusion: dict[str, Any]) -> dict[str, Any]:
    """One consensus label of a classifier or split run: `score` is the mean likelihood of
    the questions (the classifier's category, a split's pages) whose consensus is this
    label; each document shows its own mean over those questions and `value` = the label.
    `own` and `prior`: (document id, score) of those questions in the run (document order)
    and in the prior run."""
    filenames = run["filenames"]
    mine: dict[str, list[float]] = {}
    for document_id, score in own:
        mine.setdefault(document_id, []).append(score)
    theirs: dict[str, list[float]] = {}
    for document_id, score in prior:
        theirs.setdefault(document_id, []).append(score)
    documents = [{"id": document_id, "filename": filenames.get(document_id, ""), "score": _mean(scores),
                  "value": label, "prior_score": _mean(theirs.get(document_id, []))}
                 for document_id, scores in mine.items()]
    return {
        "run_id": run["run_id"], "kind": "by_target", "view": "by_target", "target": label,
        "score": _mean([score for _, score in own]), "prior_score": _mean([score for _, score in prior]),
        "confusion": _slice(confusion, label), "documents": documents,
    }


def is_label(block_type: str, metrics: Mapping[str, Any], path: str) -> dict[str, Any] | None:
    """The run's confusion when `path` names one of its consensus labels (classifier and
    split runs; asked when no document has a target at that path), else None."""
    if block_type not in LABEL_BLOCKS:
        return None
    confusion = aggregate.confusion(metrics)
    return confusion if path in confusion["diag"] else None


def votes(run_id: str, doc: DocumentConsensus, path: str, target: tuple[float, Any],
          prior_score: float | None) -> dict[str, Any]:
    score, rows = target
    return {
        "run_id": run_id, "kind": "votes", "view": "votes",
        "document": {"id": doc.document_id, "filename": doc.filename}, "target": path,
        "score": score, "prior_score": prior_score, "rows": rows,
    }


def _mean(values: list[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def _label_slice(block_type: str, metrics: Mapping[str, Any], path: str) -> dict[str, Any] | None:
    """For classifier/split runs: how the run's consensus labels flow, seen from one label."""
    if block_type not in LABEL_BLOCKS:
        return None
    confusion = aggregate.confusion(metrics)
    return _slice(confusion, path) if path in confusion["diag"] else None


def _slice(confusion: dict[str, Any], label: str) -> dict[str, Any]:
    """`self`: the share of votes on `label` questions that agree; `flow_to[x]`: the share
    of them that said x instead; `flow_from[y]`: the share of votes on `y` questions that
    said `label`."""
    return {
        "self": confusion["diag"][label],
        "flow_from": {f["source"]: f["score"] for f in confusion["flows"] if f["target"] == label},
        "flow_to": {f["target"]: f["score"] for f in confusion["flows"] if f["source"] == label},
    }


def _plain_confusion(confusion: dict | None) -> dict | None:
    return {"diag": confusion["diag"], "flows": confusion["flows"]} if confusion else None


def require(value: str | None, name: str) -> str:
    if not value:
        raise invalid(f"{name} is required for this view", field=name)
    return value
