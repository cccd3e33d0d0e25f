"""The metrics views as they were computed before issue 17, from whole states (every
document of the run and of the prior run): the oracle the bounded views are compared
with, byte for byte (tests/integration/test_metrics_views.py). Copied from
services/api/metrics.py and services/api/routes/metrics.py as they were; do not "fix" it."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from projections.domain import aggregate
from projections.domain.aggregate import LABEL_BLOCKS
from projections.domain.consensus.normalize import label_text
from projections.domain.state import BlockState, DocumentState, ExperimentState, RunState
from projections.store import views
from projections.store.read_columns import run_summary
from services.api.errors import invalid, not_found
from services.api.freshness import Fingerprints, current_fingerprints
from services.api.metrics import stale_or_missing


@dataclass
class MetricsInput:
    run: RunState
    documents: list[DocumentState]
    experiment: ExperimentState
    block: BlockState | None
    prior: RunState | None = None
    prior_documents: dict[str, DocumentState] = field(default_factory=dict)

    @property
    def block_type(self) -> str:
        return self.run.spec["block_type"]

    @cached_property
    def current(self) -> Fingerprints:
        return current_fingerprints(self.experiment, self.block)

    def prior_score(self, document_id: str) -> float | None:
        doc = self.prior_documents.get(document_id)
        return doc.score if doc else None

    def prior_target(self, document_id: str, path: str) -> float | None:
        return _target_score(self.prior_documents.get(document_id), path)


def by_document(data: MetricsInput, document_id: str | None) -> dict[str, Any]:
    doc = _document(data, document_id)
    consensus = doc.consensus or {}
    targets = [{"path": t["path"], "score": t["score"], "value": t["value"],
                "prior_score": data.prior_target(doc.document_id, t["path"])}
               for t in consensus.get("targets", ())]
    return {
        "run_id": data.run.run_id, "kind": "by_document", "view": "by_document",
        "document": {"id": doc.document_id, "filename": doc.filename},
        "score": doc.score, "prior_score": data.prior_score(doc.document_id),
        "confusion": _plain_confusion(consensus.get("confusion")), "targets": targets,
    }


def by_target(data: MetricsInput, target_path: str | None) -> dict[str, Any]:
    """A target is a path (`vendor`, `category`, `pages.3`) or, for classifier and split
    runs, a consensus label (`invoice`): its confusion slice and the documents voting it."""
    path = _require(target_path, "target_path")
    if data.block_type in LABEL_BLOCKS and _target_in_any(data.documents, path) is None:
        confusion = aggregate.confusion(data.run.metrics)
        if path in confusion["diag"]:
            return _label_target(data, path, confusion)
    documents = []
    for doc in data.documents:
        target = _target(doc, path)
        if target is not None:
            documents.append({"id": doc.document_id, "filename": doc.filename, "score": target["score"],
                              "value": target["value"], "prior_score": data.prior_target(doc.document_id, path)})
    likelihoods = aggregate.likelihoods(data.run.metrics)
    if path not in likelihoods and not documents:
        raise not_found("target", path)
    prior = aggregate.likelihoods(data.prior.metrics).get(path) if data.prior else None
    return {
        "run_id": data.run.run_id, "kind": "by_target", "view": "by_target", "target": path,
        "score": likelihoods.get(path), "prior_score": prior,
        "confusion": _label_slice(data, path), "documents": documents,
    }


def _label_target(data: MetricsInput, label: str, confusion: dict[str, Any]) -> dict[str, Any]:
    """One consensus label: `score` is the mean likelihood of the questions (the
    classifier's category, a split's pages) whose consensus is this label; each document
    shows its own mean over those questions and `value` = the label."""
    documents = []
    for doc in data.documents:
        own = _label_scores(doc, label)
        if own:
            documents.append({"id": doc.document_id, "filename": doc.filename, "score": _mean(own), "value": label,
                              "prior_score": _mean(_label_scores(data.prior_documents.get(doc.document_id), label))})
    prior = [s for d in data.prior_documents.values() for s in _label_scores(d, label)]
    return {
        "run_id": data.run.run_id, "kind": "by_target", "view": "by_target", "target": label,
        "score": _mean([s for d in data.documents for s in _label_scores(d, label)]),
        "prior_score": _mean(prior), "confusion": _slice(confusion, label), "documents": documents,
    }


def _label_scores(doc: DocumentState | None, label: str) -> list[float]:
    """The likelihoods of a document's questions whose consensus is `label`."""
    targets = (doc.consensus or {}).get("targets", ()) if doc else ()
    return [t["score"] for t in targets if t["value"] is not None and label_text(t["value"]) == label]


def _mean(values: list[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def _target_in_any(documents: list[DocumentState], path: str) -> dict[str, Any] | None:
    return next((t for d in documents if (t := _target(d, path)) is not None), None)


def votes(data: MetricsInput, document_id: str | None, target_path: str | None) -> dict[str, Any]:
    doc = _document(data, document_id)
    path = _require(target_path, "target_path")
    target = _target(doc, path)
    if target is None:
        raise not_found("target", path)
    return {
        "run_id": data.run.run_id, "kind": "votes", "view": "votes",
        "document": {"id": doc.document_id, "filename": doc.filename}, "target": path,
        "score": target["score"], "prior_score": data.prior_target(doc.document_id, path),
        "rows": target["rows"],
    }


def _label_slice(data: MetricsInput, path: str) -> dict[str, Any] | None:
    """For classifier/split runs: how the run's consensus labels flow, seen from one label."""
    if data.block_type not in LABEL_BLOCKS:
        return None
    confusion = aggregate.confusion(data.run.metrics)
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


def _document(data: MetricsInput, document_id: str | None) -> DocumentState:
    document_id = _require(document_id, "document_id")
    for doc in data.documents:
        if doc.document_id == document_id:
            return doc
    raise not_found("document", document_id)


def _target(doc: DocumentState | None, path: str) -> dict[str, Any] | None:
    for target in ((doc.consensus or {}).get("targets", ()) if doc else ()):
        if target["path"] == path:
            return target
    return None


def _target_score(doc: DocumentState | None, path: str) -> float | None:
    target = _target(doc, path)
    return target["score"] if target else None


def _plain_confusion(confusion: dict | None) -> dict | None:
    return {"diag": confusion["diag"], "flows": confusion["flows"]} if confusion else None


def _require(value: str | None, name: str) -> str:
    if not value:
        raise invalid(f"{name} is required for this view", field=name)
    return value


async def load(conn, org_id: str, run_id: str, include_prior: bool, prior_run_id: str | None) -> MetricsInput:
    """Whole states: the run's, every document's (all passes and the consensus tree)."""
    run = await views.get_run(conn, org_id, run_id)
    if run is None:
        raise not_found("run", run_id)
    experiment = await views.get_experiment(conn, org_id, run.spec["experiment_id"])
    if experiment is None:
        raise not_found("experiment", run.spec["experiment_id"])
    block = await views.get_block(conn, org_id, experiment.workflow_id, experiment.block_id)
    documents = await views.run_documents_of(conn, run.run_id)
    if prior_run_id:
        prior = await views.get_run(conn, org_id, prior_run_id)
        if prior is None:
            raise not_found("run", prior_run_id)
    else:
        prior = await views.prior_completed_run(conn, org_id, run) if include_prior else None
    prior_docs = {d.document_id: d for d in await views.run_documents_of(conn, prior.run_id)} if prior else {}
    return MetricsInput(run, documents, experiment, block, prior, prior_docs)


async def answer(conn, org_id: str, run_id: str, view: str, document_id=None, target_path=None,
                 include_prior: bool = True, prior_run_id=None, allow_stale: bool = False) -> dict:
    data = await load(conn, org_id, run_id, include_prior, prior_run_id)
    problem = stale_or_missing(run_summary(data.run), data.current)
    if problem and not (allow_stale and problem["kind"] == "stale_metrics"):
        return problem
    if view == "by_document":
        return by_document(data, document_id)
    if view == "by_target":
        return by_target(data, target_path)
    return votes(data, document_id, target_path)
