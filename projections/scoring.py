"""The fold's single call into the consensus engine, when a document becomes terminal."""
from __future__ import annotations

from typing import Any, Mapping

from .consensus import compute_consensus


def score_document(spec: Mapping[str, Any], votes: list[Any]) -> tuple[float | None, dict]:
    result = compute_consensus(spec["block_type"], dict(spec.get("block_config") or {}), votes)
    return result.score, result.to_json()


def target_scores(consensus: Mapping[str, Any]) -> list[tuple[str, float]]:
    return [(t["path"], float(t["score"])) for t in consensus.get("targets", ())]
