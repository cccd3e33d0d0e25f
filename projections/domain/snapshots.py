"""A run's history in bounded pieces: what a run snapshot holds, and folding a tail onto it.

The projector keeps a snapshot of each run when it is created and every SNAPSHOT_EVERY
rows of its event index (projections/runtime/history_index.py). Time travel restores the nearest snapshot at or
before a position and folds the accepted events after it: at most SNAPSHOT_EVERY, however
long the run's history.

A snapshot holds what time travel shows of a run (lifecycle, timing, counts, the exact
score sum) and its pass count, never its documents, so it costs the same for a run of 5
documents or 5,000, and the projector writes it from the state in hand. The tail needs only
the documents it touches, and of those only which passes they had and how each ended
(`Fact`, from the event index: at most n_consensus per document). A document that finishes
in the tail takes its stored final score: a document's consensus never changes once it
finished, so nothing is rescored and no pass output is needed. The run's metrics aggregate
is not restored (time travel does not show it).

Pure: no I/O. tests/unit/test_snapshot_properties.py shows that snapshot + tail equals a
full refold at every position of generated histories.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping

from events.envelope import Event
from projections.domain import aggregate
from projections.domain.fold import apply
from projections.domain.state import DocumentState, PassFact, RunState

SNAPSHOT_EVERY = 100
"""Rows of a run's event index between two snapshots. What a time-travel request folds is
at most this many events (their bodies read from the index, ~0.5-1 KB each for typical
passes), about one history page's worth; what it costs the projector is one ~300-byte row
per 100 indexed events. Counted in index rows, rejected ones included, so that what a
request reads between a snapshot and its position is bounded too, whatever a producer sends."""

_TIMES = ("created_at", "started_at", "completed_at", "latest_fact_at")
_SCALARS = ("status", "error", "cancel_reason", "completed_document_count", "error_count", "document_count",
            "score_total", *_TIMES)
_RESTORED = {}  # a completed pass restored from its fact: a vote that is not None (its output is not needed)


@dataclass(frozen=True, slots=True)
class Fact:
    """A document's pass as a fact: completed, or finally failed."""

    pass_index: int
    completed: bool
    occurred_at: datetime


def compact(run: RunState | None, passes: int) -> dict[str, Any] | None:
    """A snapshot's JSON: the run's scalars (no spec, documents or metrics) and its pass count."""
    if run is None:
        return None
    data = {name: getattr(run, name) for name in _SCALARS}
    for name in _TIMES:
        data[name] = data[name].isoformat() if data[name] else None
    data["passes"] = passes
    return data


def counters(run: RunState | None, passes: int) -> list | None:
    """What the console's timeline shows of a run after an event: [status, done, failed, passes]."""
    if run is None:
        return None
    return [run.status, run.completed_document_count, run.error_count, passes]


def restore(snapshot: Mapping[str, Any] | None, run_id: str, org_id: str, spec: Mapping[str, Any],
            facts: Mapping[str, Iterable[Fact]]) -> tuple[RunState | None, int]:
    """The run at a snapshot, with the documents named in `facts` (each with its pass facts
    up to the snapshot; a document without any yet maps to nothing), and its pass count."""
    if snapshot is None:
        return None, 0
    values = dict(snapshot)
    passes = values.pop("passes")
    for name in _TIMES:
        values[name] = datetime.fromisoformat(values[name]) if values[name] else None
    n = int(spec["n_consensus"])
    documents = {doc_id: _document(doc_id, list(found), n) for doc_id, found in facts.items()}
    run = RunState(run_id=run_id, org_id=org_id, spec=spec, documents=documents, metrics=aggregate.EMPTY, **values)
    return run, passes


def _document(doc_id: str, facts: list[Fact], n: int) -> DocumentState:
    passes = {f.pass_index: PassFact("completed" if f.completed else "failed", 0, f.occurred_at,
                                     output=_RESTORED if f.completed else None) for f in facts}
    if len(passes) < n:
        status = "running" if passes else "pending"
    else:
        status = "completed" if any(f.completed for f in facts) else "error"
    return DocumentState(doc_id, 0, "", {}, status=status, passes=passes)


class Tail:
    """Folds a run's accepted events after a snapshot (or from nothing), keeping its pass
    count. `scores`: the stored final score of every document that may finish in the tail."""

    def __init__(self, state: RunState | None, passes: int, scores: Mapping[str, float | None]):
        self.state, self.passes, self._scores = state, passes, scores

    def apply(self, event: Event) -> None:
        document_id = getattr(event.payload, "document_id", None)
        before = self._passes_of(document_id)
        self.state = apply(self.state, event, self._scorer(document_id)).state
        self.passes += self._passes_of(document_id) - before

    def counters(self) -> list | None:
        return counters(self.state, self.passes)

    def _passes_of(self, document_id: str | None) -> int:
        if document_id is None or self.state is None:
            return 0
        doc = self.state.documents.get(document_id)
        return len(doc.passes) if doc is not None else 0

    def _scorer(self, document_id: str | None):
        def stored(spec, votes):  # only a pass event finishes a document: its own
            return self._scores.get(document_id), {}
        return stored
