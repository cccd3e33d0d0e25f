"""The event catalogue (v1). Published types never change: add a version and an upcaster."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .envelope import Identifier, Payload, register

BlockType = Literal["extract", "classifier", "split", "for_each"]
NConsensus = Literal[3, 5, 7]


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DocumentSpec(_Part):
    """A document as frozen into an experiment or a run."""

    document_id: Identifier
    filename: str
    handle_inputs: dict[str, Any]
    provenance: dict[str, Any] | None = None


class ErrorInfo(_Part):
    message: str
    code: str | None = None


@register
class BlockDefined(Payload):
    TYPE = "BlockDefined"
    workflow_id: Identifier
    block_id: Identifier
    block_type: BlockType
    config: dict[str, Any]
    fingerprint: str
    version_id: str


@register
class ExperimentCreated(Payload):
    TYPE = "ExperimentCreated"
    workflow_id: Identifier
    block_id: Identifier
    name: str
    n_consensus: NConsensus
    documents: tuple[DocumentSpec, ...]
    source_experiment_id: str | None = None


@register
class ExperimentUpdated(Payload):
    """Only the fields that changed are set."""

    TYPE = "ExperimentUpdated"
    name: str | None = None
    n_consensus: NConsensus | None = None
    documents: tuple[DocumentSpec, ...] | None = None


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
    block_version_id: str
    block_config: dict[str, Any]
    n_consensus: NConsensus
    documents: tuple[DocumentSpec, ...] = Field(min_length=1)
    block_execution_fingerprint: str
    documents_fingerprint: str
    trigger_type: Identifier = "manual"
    parent_run_id: Identifier | None = None

    def natural_key(self, aggregate_id: str) -> str:
        return f"{aggregate_id}/{self.TYPE}"


@register
class RunQueued(Payload):
    TYPE = "RunQueued"

    def natural_key(self, aggregate_id: str) -> str:
        return f"{aggregate_id}/{self.TYPE}"


@register
class RunStarted(Payload):
    TYPE = "RunStarted"
    worker: str | None = None


@register
class DocumentPassCompleted(Payload):
    TYPE = "DocumentPassCompleted"
    document_id: Identifier
    pass_index: int = Field(ge=0)
    output: Any
    duration_ms: int | None = Field(default=None, ge=0)
    usage: dict[str, Any] | None = None
    attempt: int = Field(default=1, ge=1)

    def natural_key(self, aggregate_id: str) -> str:
        return f"{aggregate_id}/{self.document_id}/{self.pass_index}/{self.TYPE}"


@register
class DocumentPassFailed(Payload):
    """v2: `error` is an object. v1 carried a bare message string (see upcasters)."""

    TYPE = "DocumentPassFailed"
    VERSION = 2
    document_id: Identifier
    pass_index: int = Field(ge=0)
    attempt: int = Field(default=1, ge=1)
    error: ErrorInfo
    final: bool = True

    def natural_key(self, aggregate_id: str) -> str:
        return f"{aggregate_id}/{self.document_id}/{self.pass_index}/{self.TYPE}/{self.attempt}"


@register
class RunCancelRequested(Payload):
    TYPE = "RunCancelRequested"
    reason: str | None = None
    requested_by: str | None = None


@register
class RunFailed(Payload):
    TYPE = "RunFailed"
    error: ErrorInfo

RUN_EVENT_TYPES = frozenset(
    {
        "RunCreated", "RunQueued", "RunStarted", "DocumentPassCompleted",
        "DocumentPassFailed", "RunCancelRequested", "RunFailed",
    }
)
