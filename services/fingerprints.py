"""Stable identities and fingerprints: sha256 over canonical JSON."""
from __future__ import annotations

import uuid

from projections.domain.fingerprints import (  # noqa: F401 - written by the projector, read here
    canonical, digest, documents_fingerprint, execution_fingerprint, metrics_validity_fingerprint
)


def block_fingerprint(block_type: str, config: dict) -> str:
    return digest({"type": block_type, "config": config})


def block_version_id(workflow_id: str, block_id: str, fingerprint: str) -> str:
    return "blkv_" + digest([workflow_id, block_id, fingerprint])[:24]


def document_id(handle_inputs: dict) -> str:
    return "doc_" + digest(handle_inputs)[:24]


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"
