"""The pure fold: apply(state, event) -> Applied. The log order is the arbiter.

One small handler per event type, registered in one table. An event that is not
allowed in the current state leaves the state unchanged and is recorded as
rejected with a reason. Only envelope data is used, never the wall clock.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from events.envelope import Event
from projections.domain import aggregate, clock
from projections.domain.outputs import output_problem
from projections.domain.scoring import config_problem, score_document
from projections.domain.state import (
    RUN_TERMINAL, Applied, BlockState, BlockVersion, DocumentState, ExperimentState, PassFact, RunState, evolve
)

Scorer = Callable[[Any, list], tuple[float | None, Any]]
Handler = Callable[[Any, Event, Scorer], Applied]
_HANDLERS: dict[str, Handler] = {}
AGGREGATE_KIND: dict[str, str] = {}


def handles(event_type: str, kind: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        _HANDLERS[event_type] = fn
        AGGREGATE_KIND[event_type] = kind
        return fn

    return register


def apply(state: Any, event: Event, score: Scorer | None = None, appended_at: datetime | None = None) -> Applied:
    """`score(spec, votes) -> (score, consensus)` runs when a document finishes; the
    default is the consensus engine. Readers that need lifecycle only (workers) pass
    `no_scores` and skip its cost.

    `appended_at` is the log's append time of the event's record (data, not the wall
    clock, so a replay decides the same): the event is timed within bounds of it and
    never before its run's creation (`timed`, projections/domain/clock.py), and a
    noticeable clamp is noted as the outcome's reason. Without it (an event already
    timed, as the event index keeps them) only the creation bounds the stamp."""
    if state is not None and state.org_id != event.org_id:
        return reject(state, f"organisation {event.org_id!r} does not own {event.aggregate_id!r}")
    created = _created(state)
    timed = clock.timed_event(event, appended_at, created)
    applied = _HANDLERS[event.type](state, timed, score or score_document)
    note = clock.clamp_note(event.occurred_at, timed.occurred_at, created) if timed is not event else None
    return evolve(applied, reason=note) if note and applied.accepted and applied.reason is None else applied


def timed(state: Any, event: Event, appended_at: datetime | None) -> Event:
    """`event` as `apply(state, event, appended_at=appended_at)` times it: what the event
    index keeps, so that every refold from the index agrees with the live fold."""
    if state is not None and state.org_id != event.org_id:
        return clock.timed_event(event, appended_at)
    return clock.timed_event(event, appended_at, _created(state))


def _created(state: Any) -> datetime | None:
    """The floor of an event's time: its run's creation (no fact about a run precedes it)."""
    return state.created_at if isinstance(state, RunState) else None


def no_scores(spec: Any, votes: list) -> tuple[None, None]:
    """A scorer for lifecycle-only folds: documents finish unscored."""
    return None, None


def reject(state: Any, reason: str) -> Applied:
    return Applied(state, accepted=False, reason=reason)


def accept(state: Any, finished: tuple[str, ...] = ()) -> Applied:
    return Applied(state, accepted=True, finished_documents=finished)


# -- runs ------------------------------------------------------------------------

@handles("RunCreated", "run")
def _run_created(state: RunState | None, event: Event, score: Scorer) -> Applied:
    if state is not None:
        return reject(state, "run already created")
    spec = event.payload.model_dump(mode="json")
    ids = [d["document_id"] for d in spec["documents"]]
    if len(set(ids)) != len(ids):
        return reject(None, "duplicate document ids in run")
    problem = config_problem(spec["block_config"])
    if problem:
        return reject(None, f"unusable block config: {problem}")
    documents = {
        d["document_id"]: DocumentState(d["document_id"], i, d["filename"], d["handle_inputs"])
        for i, d in enumerate(spec["documents"])
    }
    run = RunState(
        run_id=event.aggregate_id, org_id=event.org_id, spec=spec, created_at=event.occurred_at,
        documents=documents,
    )
    return accept(run)


@handles("RunQueued", "run")
def _run_queued(state: RunState | None, event: Event, score: Scorer) -> Applied:
    if state is None:
        return reject(None, "unknown run")
    if state.status != "pending":
        return reject(state, f"cannot queue a {state.status} run")
    return accept(evolve(state, status="queued"))


@handles("RunStarted", "run")
def _run_started(state: RunState | None, event: Event, score: Scorer) -> Applied:
    """A timing fact whenever it arrives: `started_at` is the earliest start or pass,
    so a start that comes after a pass (or after the end) still counts."""
    if state is None:
        return reject(None, "unknown run")
    return accept(_running(state, event))


@handles("RunCancelRequested", "run")
def _run_cancel_requested(state: RunState | None, event: Event, score: Scorer) -> Applied:
    if state is None:
        return reject(None, "unknown run")
    if state.status in RUN_TERMINAL:
        return reject(state, f"run is already {state.status}")
    cancelled = evolve(
        state, status="cancelled", cancel_reason=event.payload.reason, completed_at=event.occurred_at
    )
    return accept(cancelled)


@handles("RunFailed", "run")
def _run_failed(state: RunState | None, event: Event, score: Scorer) -> Applied:
    if state is None:
        return reject(None, "unknown run")
    if state.status in RUN_TERMINAL:
        return reject(state, f"run is already {state.status}")
    failed = evolve(state, status="error", error=event.payload.error.model_dump(), completed_at=event.occurred_at)
    return accept(failed)


@handles("DocumentPassCompleted", "run")
def _pass_completed(state: RunState | None, event: Event, score: Scorer) -> Applied:
    p = event.payload
    problem = _pass_problem(state, p.document_id, p.pass_index) or output_problem(
        state.spec["block_type"], p.output
    )
    if problem:
        return reject(state, problem)
    fact = PassFact("completed", p.attempt, event.occurred_at, output=p.output, duration_ms=p.duration_ms)
    return _record_pass(state, event, p.document_id, p.pass_index, fact, score)


@handles("DocumentPassFailed", "run")
def _pass_failed(state: RunState | None, event: Event, score: Scorer) -> Applied:
    p = event.payload
    error = p.error.model_dump()
    if not p.final:
        problem = _retry_problem(state, p.document_id, p.pass_index)
        if problem:
            return reject(state, problem)
        return _record_retry(state, event, p.document_id, p.pass_index, p.attempt, error)
    problem = _pass_problem(state, p.document_id, p.pass_index)
    if problem:
        return reject(state, problem)
    fact = PassFact("failed", p.attempt, event.occurred_at, error=error)
    return _record_pass(state, event, p.document_id, p.pass_index, fact, score)


def _retry_problem(state: RunState | None, document_id: str, pass_index: int) -> str | None:
    """Why a retry (a non-final failure) names no pass of this run. A retry is an attempt,
    not a pass fact: it only raises the attempt count, keeps the latest error and moves
    `started_at`, all merged whatever the order, so it counts even after its pass's fact
    or the run's end."""
    if state is None:
        return "unknown run"
    if document_id not in state.document_ids:
        return f"unknown document {document_id!r}"
    if pass_index >= state.n_consensus:
        return f"pass_index {pass_index} out of range for n_consensus {state.n_consensus}"
    return None


def _pass_problem(state: RunState | None, document_id: str, pass_index: int) -> str | None:
    """Why a pass fact for this document is not allowed now, if it is not."""
    problem = _retry_problem(state, document_id, pass_index)
    if problem:
        return problem
    if state.status in RUN_TERMINAL:
        return f"run is {state.status}"
    previous = state.documents[document_id].passes.get(pass_index)
    if previous is not None:
        return f"pass {pass_index} of document {document_id!r} already {previous.status}"
    return None


def _record_retry(state: RunState, event: Event, doc_id: str, pass_index: int, attempt: int, error) -> Applied:
    doc = _touch(state.documents[doc_id], event)
    doc = _note_error(evolve(doc, attempt=max(doc.attempt, attempt)), event, pass_index, attempt, error)
    return accept(_with_document(_running(state, event), doc))


def _record_pass(state: RunState, event: Event, doc_id: str, pass_index: int, fact: PassFact,
                 score: Scorer) -> Applied:
    """Each state is evolved once per pass (all its changes together: the fold's hot path)."""
    doc = state.documents[doc_id]
    first_result = not doc.passes
    doc = evolve(doc, **_touched(doc, event), passes={**doc.passes, pass_index: fact},
                 attempt=max(doc.attempt, fact.attempt))
    if fact.error:
        doc = _note_error(doc, event, pass_index, fact.attempt, fact.error)
    changes = dict(_running_changes(state, event), latest_fact_at=_later(state.latest_fact_at, event.occurred_at),
                   document_count=state.document_count + first_result)
    if len(doc.passes) < state.n_consensus:
        return accept(evolve(state, **changes, documents={**state.documents, doc_id: doc}))
    run, doc = _finish_document(evolve(state, **changes), doc, event, score)
    run = _with_document(run, doc)
    if run.terminal_document_count == run.total_document_count:
        run = _finish_run(run, event)
    return accept(run, finished=(doc_id,))


def _finish_document(run: RunState, doc: DocumentState, event: Event,
                     scorer: Scorer) -> tuple[RunState, DocumentState]:
    votes = [_vote(doc.passes[i]) for i in range(run.n_consensus)]
    doc = evolve(doc, completed_at=max(p.occurred_at for p in doc.passes.values()))
    if all(v is None for v in votes):
        return evolve(run, error_count=run.error_count + 1), evolve(doc, status="error")
    score, consensus = scorer(run.spec, votes)
    doc = evolve(doc, status="completed", score=score, consensus=consensus)
    run = evolve(run, completed_document_count=run.completed_document_count + 1)
    if score is not None:
        run = evolve(run, score_total=aggregate.add_score(run.score_total, score),
                      metrics=aggregate.add_document(run.metrics, consensus))
    return run, doc


def _finish_run(run: RunState, event: Event) -> RunState:
    run = evolve(run, completed_at=run.latest_fact_at)
    if run.completed_document_count:
        return evolve(run, status="completed")
    error = {"message": f"all {run.total_document_count} documents failed", "code": "all_documents_failed"}
    return evolve(run, status="error", error=error)


def _later(a, b):
    return b if a is None or b > a else a


def _note_error(doc: DocumentState, event: Event, pass_index: int, attempt: int, error) -> DocumentState:
    """Keep the latest failure (by time, then pass, then attempt): independent of arrival order."""
    key = (event.occurred_at.isoformat(), pass_index, attempt)
    if doc.last_error_key is not None and tuple(doc.last_error_key) >= key:
        return doc
    return evolve(doc, last_error=error, last_error_key=key)


def _vote(fact: PassFact) -> Any:
    return fact.output if fact.status == "completed" else None


def _touch(doc: DocumentState, event: Event) -> DocumentState:
    return evolve(doc, **_touched(doc, event))


def _touched(doc: DocumentState, event: Event) -> dict[str, Any]:
    status = "running" if doc.status == "pending" else doc.status
    return {"status": status, "started_at": _earlier(doc.started_at, event.occurred_at)}


def _running(state: RunState, event: Event) -> RunState:
    """The run is running from its earliest start or pass, whatever order they arrive in."""
    return evolve(state, **_running_changes(state, event))


def _running_changes(state: RunState, event: Event) -> dict[str, Any]:
    status = "running" if state.status in ("pending", "queued") else state.status
    return {"status": status, "started_at": _earlier(state.started_at, event.occurred_at)}


def _earlier(a, b):
    return b if a is None or b < a else a


def _with_document(state: RunState, doc: DocumentState) -> RunState:
    return evolve(state, documents={**state.documents, doc.document_id: doc})


# -- experiments -------------------------------------------------------------------

@handles("ExperimentCreated", "experiment")
def _experiment_created(state: ExperimentState | None, event: Event, score: Scorer) -> Applied:
    if state is not None:
        return reject(state, "experiment already created")
    p = event.payload
    created = ExperimentState(
        experiment_id=event.aggregate_id, org_id=event.org_id, workflow_id=p.workflow_id,
        block_id=p.block_id, name=p.name, n_consensus=p.n_consensus,
        documents=tuple(d.model_dump(mode="json") for d in p.documents),
        created_at=event.occurred_at, updated_at=event.occurred_at,
        source_experiment_id=p.source_experiment_id,
    )
    return accept(created)


@handles("ExperimentUpdated", "experiment")
def _experiment_updated(state: ExperimentState | None, event: Event, score: Scorer) -> Applied:
    if state is None or state.deleted:
        return reject(state, "unknown experiment")
    p = event.payload
    changes: dict[str, Any] = {"updated_at": event.occurred_at}
    if p.name is not None:
        changes["name"] = p.name
    if p.n_consensus is not None:
        changes["n_consensus"] = p.n_consensus
    if p.documents is not None:
        changes["documents"] = tuple(d.model_dump(mode="json") for d in p.documents)
    return accept(evolve(state, **changes))


@handles("ExperimentDeleted", "experiment")
def _experiment_deleted(state: ExperimentState | None, event: Event, score: Scorer) -> Applied:
    if state is None or state.deleted:
        return reject(state, "unknown experiment")
    return accept(evolve(state, deleted=True, updated_at=event.occurred_at))


# -- blocks ------------------------------------------------------------------------

@handles("TreeHeadsPublished", "notary")
def _tree_heads_published(state: None, event: Event, score: Scorer) -> Applied:
    """A digest on the log (projections/notary): recorded in the event index, no state."""
    return accept(state)


@handles("BlockDefined", "block")
def _block_defined(state: BlockState | None, event: Event, score: Scorer) -> Applied:
    p = event.payload
    state = state or BlockState(event.org_id, p.workflow_id, p.block_id)
    current = state.current
    if current is not None and current.fingerprint == p.fingerprint:
        return reject(state, f"same definition as version {current.version}")
    version = BlockVersion(
        version=len(state.versions) + 1, version_id=p.version_id, block_type=p.block_type,
        config=p.config, fingerprint=p.fingerprint, defined_at=event.occurred_at,
    )
    return accept(evolve(state, versions=state.versions + (version,)))
