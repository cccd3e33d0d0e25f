"""The fold's single call into the consensus engine, when a document becomes terminal."""
from __future__ import annotations

from typing import Any, Mapping

from projections.domain.consensus import compute_consensus, config_problem

__all__ = ["score_document", "config_problem"]


def score_document(spec: Mapping[str, Any], votes: list[Any]) -> tuple[float | None, dict]:
    result = compute_consensus(spec["block_type"], dict(spec.get("block_config") or {}), votes)
    return result.score, result.to_json()
