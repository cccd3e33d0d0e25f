"""The fingerprints the fold's read columns carry: sha256 over canonical JSON.

They live here, not in `services`, because the projector writes them beside the state
(projections/store/read_columns.py); `services/fingerprints.py` re-exports them with the ids
the API derives.
"""
from __future__ import annotations

import hashlib
from typing import Any

import orjson

from projections.domain.consensus import ENGINE_VERSION


def canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def digest(value: Any) -> str:
    return hashlib.sha256(canonical(value)).hexdigest()


def execution_fingerprint(block_type: str, config: dict, n_consensus: int) -> str:
    return digest({"type": block_type, "config": config, "n_consensus": n_consensus})


def documents_fingerprint(document_ids: list[str]) -> str:
    return digest(sorted(document_ids))


def metrics_validity_fingerprint(execution: str, documents: str) -> str:
    """What makes a run's metrics comparable: its execution, its documents and the engine's version."""
    return digest({"execution": execution, "documents": documents, "engine": ENGINE_VERSION})
