"""Small builders for events in tests: plain lists of events, no I/O."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from events.catalogue import (
    DocumentPassCompleted, DocumentPassFailed, DocumentSpec, ErrorInfo, RunCancelRequested, RunCreated, RunFailed,
    RunQueued, RunStarted
)
from events.envelope import Event, new_event

T0 = (datetime.now(timezone.utc) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
"""A day ago, on the hour: events projected through a real log are timed against its append
clock (projections/domain/clock.py), so test stamps sit where real ones do, a little in the past."""


class RunScript:
    """Builds the events of one run with a deterministic clock (one second per event)."""

    def __init__(self, run_id: str = "run_1", docs: int = 2, n: int = 3, block_type: str = "classifier",
                 org_id: str = "org_a", config: dict | None = None):
        self.run_id, self.n, self.org_id, self.block_type = run_id, n, org_id, block_type
        self.config = config or {}
        self.doc_ids = [f"doc_{i}" for i in range(docs)]
        self.tick = 0

    def at(self) -> datetime:
        self.tick += 1
        return T0 + timedelta(seconds=self.tick)

    def event(self, payload, occurred_at: datetime | None = None, org_id: str | None = None) -> Event:
        return new_event(payload, aggregate_id=self.run_id, org_id=org_id or self.org_id,
                         producer="test", occurred_at=occurred_at or self.at())

    def created(self) -> Event:
        docs = tuple(DocumentSpec(document_id=d, filename=f"{d}.json", handle_inputs={"in": {"type": "json", "data": d}})
                     for d in self.doc_ids)
        return self.event(RunCreated(
            experiment_id="exp_1", workflow_id="wf_1", workflow_version_id="wfv_1", block_id="b1",
            block_type=self.block_type, block_version_id="blkv_1", block_config=self.config, n_consensus=self.n,
            documents=docs, block_execution_fingerprint="f" * 64, documents_fingerprint="d" * 64,
        ))

    def queued(self) -> Event:
        return self.event(RunQueued())

    def started(self) -> Event:
        return self.event(RunStarted(worker="w1"))

    def passed(self, doc: str, i: int, output: Any = None, attempt: int = 1, at: datetime | None = None) -> Event:
        output = {"category": "invoice"} if output is None else output
        return self.event(DocumentPassCompleted(document_id=doc, pass_index=i, output=output, attempt=attempt,
                                                duration_ms=10), at)

    def failed(self, doc: str, i: int, final: bool = True, attempt: int = 1, message: str = "boom") -> Event:
        return self.event(DocumentPassFailed(document_id=doc, pass_index=i, attempt=attempt, final=final,
                                             error=ErrorInfo(message=message, code="E")))

    def cancel(self, reason: str = "stop") -> Event:
        return self.event(RunCancelRequested(reason=reason, requested_by="tester"))

    def run_failed(self, message: str = "infra down") -> Event:
        return self.event(RunFailed(error=ErrorInfo(message=message)))

    def all_passes(self, output: Any = None) -> list[Event]:
        return [self.passed(d, i, output) for d in self.doc_ids for i in range(self.n)]


def fold_all(events: list[Event], state: Any = None, score=None) -> tuple[Any, list]:
    from projections.domain.fold import apply

    outcomes = []
    for event in events:
        applied = apply(state, event, score)
        state = applied.state
        outcomes.append(applied)
    return state, outcomes
