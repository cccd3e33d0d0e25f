"""Stable identities and fingerprints: sha256 over canonical JSON."""
from __future__ import annotations

import hashlib
import uuid
from typing import Any

import orjson

from projections.read_columns import metrics_validity_fingerprint  # noqa: F401 - the run resource carries it


def canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def digest(value: Any) -> str:
    return hashlib.sha256(canonical(value)).hexdigest()


def block_fingerprint(block_type: str, config: dict) -> str:
    return digest({"type": block_type, "config": config})


def block_version_id(workflow_id: str, block_id: str, fingerprint: str) -> str:
    return "blkv_" + digest([workflow_id, block_id, fingerprint])[:24]


def execution_fingerprint(block_type: str, config: dict, n_consensus: int) -> str:
    return digest({"type": block_type, "config": config, "n_consensus": n_consensus})


def document_id(handle_inputs: dict) -> str:
    return "doc_" + digest(handle_inputs)[:24]


def documents_fingerprint(document_ids: list[str]) -> str:
    return digest(sorted(document_ids))


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"
