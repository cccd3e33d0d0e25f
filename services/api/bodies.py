"""Request bodies. Strict: unknown fields are a 422, not silently dropped."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileRef(BaseModel):
    id: str
    filename: str
    mime_type: str


class JsonHandle(_Body):
    type: Literal["json"] = "json"
    data: Any = None


class FileHandle(_Body):
    type: Literal["file"] = "file"
    document: FileRef


class DocumentBody(_Body):
    handle_inputs: dict[str, JsonHandle | FileHandle] = Field(min_length=1)
    provenance: dict[str, Any] | None = None


class CaptureBody(_Body):
    run_id: str
    step_id: str | None = None


class CreateExperimentBody(_Body):
    workflow_id: str = Field(min_length=1)
    block_id: str | None = None
    document_captures: list[CaptureBody] | None = None
    documents: list[DocumentBody] | None = None
    n_consensus: Literal[3, 5, 7] | None = None
    name: str | None = None
    source_experiment_id: str | None = None


class UpdateExperimentBody(_Body):
    document_captures: list[CaptureBody] | None = None
    documents: list[DocumentBody] | None = None
    n_consensus: Literal[3, 5, 7] | None = None
    name: str | None = None


TriggerType = Literal["manual", "api", "schedule", "webhook", "email", "custom", "restart"]
"""What started a run: the trigger types the retab SDK knows (TriggerInfoType)."""


class CreateRunBody(_Body):
    experiment_id: str = Field(min_length=1)
    workflow_id: str | None = None
    plan_token: str | None = None
    trigger_type: TriggerType | None = None  # None: `api`, or the `trigger_type` query parameter


class DefineBlockBody(_Body):
    type: Literal["extract", "classifier", "split", "for_each"]
    config: dict[str, Any] = Field(default_factory=dict)


class IngestEvent(_Body):
    type: Literal["RunQueued", "RunStarted", "DocumentPassCompleted", "DocumentPassFailed", "RunFailed"]
    run_id: str = Field(min_length=1)
    payload: dict[str, Any] = Field(default_factory=dict)
    event_id: str | None = None
    occurred_at: datetime | None = None
    schema_version: int | None = None
    trace: str | None = Field(None, description="the event's W3C traceparent; default: the request's `traceparent` "
                                                 "header, if valid")


class IngestBody(_Body):
    events: list[IngestEvent] = Field(min_length=1, max_length=1000)
