"""What the fold guarantees for any arrival order, over every run event type.

A run's log holds RunCreated (always first: nobody knows the run id before it), then
any mix of RunQueued, RunStarted, pass facts (completions and final failures),
retries (non-final failures), RunCancelRequested and RunFailed, with duplicates, each
stamped at a time unrelated to its place in the log. What holds:

- **Timing and counters do not depend on order**: `started_at` is the earliest
  accepted start, retry or pass fact; `completed_at` the latest pass fact, or the
  accepted cancel or failure; with no cancel or run failure, every interleaving folds
  to the very same state.
- **Duplicates never change anything**, wherever they land after the original.
- **What depends on order, on purpose** (the log is the arbiter): a pass fact after
  the run's cancel or failure is rejected, and of two terminal events the first wins.
  Even then the state is a function of the accepted events alone: refolding them in
  any order (RunCreated, then RunQueued, the terminal event last) gives the same state.
"""
from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings, strategies as st

from projections.domain.fold import no_scores
from tests.builders import RunScript, fold_all

LABELS = ["invoice", "receipt", "letter"]
TERMINAL_COMMANDS = ("RunCancelRequested", "RunFailed")


@st.composite
def run_logs(draw, commands: bool = True):
    """(RunCreated, the other events in log order); times drawn apart from the order."""
    script = RunScript(docs=draw(st.integers(1, 3)), n=draw(st.sampled_from([3, 5])))
    created = script.created()

    def at(make, *args, **kwargs):
        script.tick = draw(st.integers(1, 500))
        return make(*args, **kwargs)

    events = [at(script.queued) for _ in range(draw(st.integers(0, 1)))]
    events += [at(script.started) for _ in range(draw(st.integers(0, 2)))]
    for doc in script.doc_ids:
        for i in range(script.n):
            retries = draw(st.integers(0, 2))
            events += [at(script.failed, doc, i, final=False, attempt=a + 1) for a in range(retries)]
            if draw(st.booleans()) or draw(st.booleans()):
                label = draw(st.sampled_from(LABELS))
                events.append(at(script.passed, doc, i, {"category": label}, attempt=retries + 1))
            else:
                events.append(at(script.failed, doc, i, attempt=retries + 1, message=f"fail {doc}/{i}"))
    if commands:
        events += [at(script.cancel) for _ in range(draw(st.integers(0, 1)))]
        events += [at(script.run_failed) for _ in range(draw(st.integers(0, 1)))]
    events = draw(st.permutations(events))
    keep = draw(st.integers(0, len(events)))  # sometimes the run is still in flight
    return created, events[:keep] if draw(st.booleans()) else events


def with_duplicates(events: list, data) -> list:
    """`events` with copies of some of them inserted anywhere after their original."""
    result = list(events)
    for original in data.draw(st.lists(st.sampled_from(events), max_size=6)) if events else []:
        first = next(i for i, e in enumerate(result) if e is original)
        result.insert(data.draw(st.integers(first + 1, len(result))), original)
    return result


@settings(max_examples=200, deadline=None)
@given(run_logs(commands=False), st.data())
def test_without_a_cancel_or_run_failure_any_interleaving_with_duplicates_gives_the_same_state(run, data):
    created, events = run
    reference, _ = fold_all([created, *events])
    shuffled = with_duplicates(data.draw(st.permutations(events)), data)
    state, _ = fold_all([created, *shuffled])
    assert state == reference


@settings(max_examples=200, deadline=None)
@given(run_logs(), st.data())
def test_duplicates_anywhere_after_their_original_change_nothing(run, data):
    created, events = run
    reference, _ = fold_all([created, *events])
    state, _ = fold_all([created, *with_duplicates(events, data)])
    assert state == reference


@settings(max_examples=200, deadline=None)
@given(run_logs(), st.data())
def test_the_state_is_a_function_of_the_accepted_events_whatever_their_order(run, data):
    created, events = run
    reference, outcomes = fold_all([created, *events])
    accepted = [e for e, o in zip(events, outcomes[1:]) if o.accepted]
    terminal = [e for e in accepted if e.type in TERMINAL_COMMANDS]
    assert len(terminal) <= 1
    queued = [e for e in accepted if e.type == "RunQueued"]
    others = data.draw(st.permutations([e for e in accepted if e.type not in (*TERMINAL_COMMANDS, "RunQueued")]))
    state, refolded = fold_all([created, *queued, *others, *terminal])
    assert all(o.accepted for o in refolded)
    assert state == reference


@settings(max_examples=200, deadline=None)
@given(run_logs())
def test_timing_is_the_earliest_start_and_the_latest_fact_of_the_accepted_events(run):
    created, events = run
    state, outcomes = fold_all([created, *events])
    accepted = [e for e, o in zip(events, outcomes[1:]) if o.accepted]
    starts = [e.occurred_at for e in accepted if e.type in ("RunStarted", "DocumentPassCompleted",
                                                             "DocumentPassFailed")]
    assert state.started_at == (min(starts) if starts else None)
    assert state.created_at == created.occurred_at
    ended_by = [e for e in accepted if e.type in TERMINAL_COMMANDS]
    facts = [e.occurred_at for e in accepted if e.type == "DocumentPassCompleted"
             or (e.type == "DocumentPassFailed" and e.payload.final)]
    if ended_by:
        assert state.completed_at == ended_by[0].occurred_at
    elif state.status in ("completed", "error"):
        assert state.completed_at == max(facts)
    else:
        assert state.completed_at is None


@settings(max_examples=100, deadline=None)
@given(run_logs())
def test_counters_agree_with_the_documents(run):
    created, events = run
    state, _ = fold_all([created, *events])
    docs = state.documents.values()
    assert state.completed_document_count == sum(d.status == "completed" for d in docs)
    assert state.error_count == sum(d.status == "error" for d in docs)
    assert state.document_count == sum(bool(d.passes) for d in docs)
    finished = state.terminal_document_count == state.total_document_count
    if state.status == "cancelled" or (state.status == "error" and state.error.get("code") != "all_documents_failed"):
        assert not finished or state.completed_at is not None
    else:
        assert (state.status in ("completed", "error")) == finished


@settings(max_examples=50, deadline=None)
@given(run_logs())
def test_a_lifecycle_only_fold_agrees_on_everything_but_the_scores(run):
    created, events = run
    full, _ = fold_all([created, *events])
    light, _ = fold_all([created, *events], score=no_scores)
    unscored = {d: replace(doc, score=None, consensus=None) for d, doc in full.documents.items()}
    assert light.documents == unscored
    assert (light.status, light.completed_document_count, light.error_count, light.document_count,
            light.started_at, light.completed_at) == (full.status, full.completed_document_count,
                                                      full.error_count, full.document_count,
                                                      full.started_at, full.completed_at)
