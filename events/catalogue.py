"""The event catalogue (v1). Published types never change: add a version and an upcaster."""
from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from . import keys
from .bounds import (
    MAX_ATTEMPT, MAX_DOCUMENTS, MAX_DOCUMENTS_BYTES, MAX_INT, MAX_PASS_INDEX, MAX_TEXT_CHARS, checked_json,
    checked_text,
)
from .envelope import Identifier, Payload, register

BlockType = Literal["extract", "classifier", "split", "for_each"]
NConsensus = Literal[3, 5, 7]
Json = Annotated[Any, AfterValidator(checked_json)]
"""Free-form JSON within the contract's bounds (events/bounds.py)."""
JsonObject = Annotated[dict[str, Any], AfterValidator(checked_json)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS), AfterValidator(checked_text)]
PassIndex = Annotated[int, Field(ge=0, le=MAX_PASS_INDEX)]
Base64 = Annotated[str, StringConstraints(max_length=128, pattern=r"^[A-Za-z0-9+/]*={0,2}$")]
MAX_HEADS = 10_000  # partitions a digest may name
Attempt = Annotated[int, Field(ge=1, le=MAX_ATTEMPT)]


def _bounded_documents(documents: tuple | None) -> tuple | None:
    if documents is not None:
        size = len(orjson.dumps([d.model_dump(mode="json") for d in documents]))
        if size > MAX_DOCUMENTS_BYTES:
            raise ValueError(f"the document list is {size} bytes as JSON, more than {MAX_DOCUMENTS_BYTES}")
    return documents


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DocumentSpec(_Part):
    """A document as frozen into an experiment or a run."""

    document_id: Identifier
    filename: Text
    handle_inputs: JsonObject
    provenance: JsonObject | None = None


Documents = Annotated[tuple[DocumentSpec, ...], Field(max_length=MAX_DOCUMENTS), AfterValidator(_bounded_documents)]


class ErrorInfo(_Part):
    message: Text
    code: Text | None = None


@register
class BlockDefined(Payload):
    TYPE = "BlockDefined"
    workflow_id: Identifier
    block_id: Identifier
    block_type: BlockType
    config: JsonObject
    fingerprint: Identifier
    version_id: Identifier


@register
class ExperimentCreated(Payload):
    TYPE = "ExperimentCreated"
    workflow_id: Identifier
    block_id: Identifier
    name: Text
    n_consensus: NConsensus
    documents: Documents
    source_experiment_id: Identifier | None = None


@register
class ExperimentUpdated(Payload):
    """Only the fields that changed are set."""

    TYPE = "ExperimentUpdated"
    name: Text | None = None
    n_consensus: NConsensus | None = None
    documents: Documents | None = None


@register
class ExperimentDeleted(Payload):
    TYPE = "ExperimentDeleted"


@register
class RunCreated(Payload):
    """Everything the run resource needs at birth; the document set is frozen here."""

    TYPE = "RunCreated"
    experiment_id: Identifier
    workflow_id: Identifier
    workflow_version_id: Identifier
    block_id: Identifier
    block_type: BlockType
    block_version_id: Identifier
    block_config: JsonObject
    n_consensus: NConsensus
    documents: Annotated[Documents, Field(min_length=1)]
    block_execution_fingerprint: Identifier
    documents_fingerprint: Identifier
    trigger_type: Identifier = "manual"
    parent_run_id: Identifier | None = None

    def natural_key(self, aggregate_id: str) -> str:
        return keys.fact_key(aggregate_id, self.TYPE, free=0)


@register
class RunQueued(Payload):
    TYPE = "RunQueued"

    def natural_key(self, aggregate_id: str) -> str:
        return keys.fact_key(aggregate_id, self.TYPE, free=0)


@register
class RunStarted(Payload):
    TYPE = "RunStarted"
    worker: Text | None = None


@register
class DocumentPassCompleted(Payload):
    TYPE = "DocumentPassCompleted"
    document_id: Identifier
    pass_index: PassIndex
    output: Json
    duration_ms: int | None = Field(default=None, ge=0, le=MAX_INT)
    usage: JsonObject | None = None
    attempt: Attempt = 1

    def natural_key(self, aggregate_id: str) -> str:
        return keys.fact_key(aggregate_id, self.document_id, self.pass_index, self.TYPE)


@register
class DocumentPassFailed(Payload):
    """v2: `error` is an object. v1 carried a bare message string (see upcasters)."""

    TYPE = "DocumentPassFailed"
    VERSION = 2
    document_id: Identifier
    pass_index: PassIndex
    attempt: Attempt = 1
    error: ErrorInfo
    final: bool = True

    def natural_key(self, aggregate_id: str) -> str:
        return keys.fact_key(aggregate_id, self.document_id, self.pass_index, self.TYPE, self.attempt)


@register
class RunCancelRequested(Payload):
    TYPE = "RunCancelRequested"
    reason: Text | None = None
    requested_by: Text | None = None


@register
class RunFailed(Payload):
    TYPE = "RunFailed"
    error: ErrorInfo

class SignedTreeHead(_Part):
    """One partition's Merkle tree head (projections/notary/heads.py): its size, root and
    time, signed with the ledger's Ed25519 key; base64 as in a digest."""

    partition: int = Field(ge=0, le=MAX_INT)
    size: int = Field(ge=0, le=MAX_INT)
    root: Base64
    time_ms: int = Field(ge=0, le=MAX_INT)
    signature: Base64


@register
class TreeHeadsPublished(Payload):
    """The signed heads of every partition, published on the log itself by the projector
    holding this aggregate's partition, every RUNLEDGER_DIGEST_INTERVAL seconds when the log
    grew: the log carries its own history of digests. The fold accepts it and keeps no state."""

    TYPE = "TreeHeadsPublished"
    key_id: Identifier
    public_key: Base64
    heads: Annotated[tuple[SignedTreeHead, ...], Field(max_length=MAX_HEADS)]


RUN_EVENT_TYPES = frozenset(
    {
        "RunCreated", "RunQueued", "RunStarted", "DocumentPassCompleted",
        "DocumentPassFailed", "RunCancelRequested", "RunFailed",
    }
)
