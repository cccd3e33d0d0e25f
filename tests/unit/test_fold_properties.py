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
- **Whatever the producers' clocks say, time is causal** (projections/domain/clock.py):
  folded with the log's append times, nothing starts before the run was created,
  nothing ends after the last append, and a run lasts no longer than its wall time
  from creation to its last append; the events as timed refold to the same state.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings, strategies as st

from projections.domain.fold import apply, no_scores, timed
from tests.builders import T0, RunScript, fold_all

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


ANY_STAMP = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31),
                         timezones=st.just(timezone.utc))  # what the event contract lets a producer send


@st.composite
def appended_logs(draw):
    """A run's log with each event's append time (never decreasing along the log, as a
    partition's are) and producer stamps that are often right, often anything at all."""
    created, events = draw(run_logs())
    log, appended = [], T0 + timedelta(milliseconds=draw(st.integers(0, 10_000)))
    for event in [created, *events]:
        appended += timedelta(milliseconds=draw(st.integers(0, 3_000)))
        skewed = draw(st.one_of(st.none(), ANY_STAMP, st.integers(-86_400_000, 86_400_000)))
        if isinstance(skewed, int):
            skewed = appended + timedelta(milliseconds=skewed)
        stamp = skewed if skewed is not None else appended - timedelta(milliseconds=draw(st.integers(0, 500)))
        log.append((event.model_copy(update={"occurred_at": stamp}), appended))
    return log


def fold_with_append_times(log):
    """The projector's fold; also the events as it timed them (what the event index keeps)."""
    state, as_timed = None, []
    for event, appended in log:
        as_timed.append(timed(state, event, appended))
        state = apply(state, event, appended_at=appended).state
    return state, as_timed


@settings(max_examples=150, deadline=None)
@given(appended_logs())
def test_whatever_the_producer_clocks_a_run_starts_after_its_creation_and_ends_by_its_last_append(log):
    run, as_timed = fold_with_append_times(log)
    created_appended, last_append = log[0][1], log[-1][1]
    assert run.created_at <= created_appended
    assert run.started_at is None or run.started_at >= run.created_at
    assert run.completed_at is None or run.created_at <= run.completed_at <= last_append
    if run.duration_ms is not None:
        assert 0 <= run.duration_ms <= (last_append - run.created_at) // timedelta(milliseconds=1)
    for event, (_, appended) in list(zip(as_timed, log))[1:]:
        assert run.created_at <= event.occurred_at <= appended


@settings(max_examples=100, deadline=None)
@given(appended_logs())
def test_the_events_as_timed_refold_without_append_times_to_the_same_state(log):
    """What `as_of`, the audit history and `verify` do with the event index."""
    run, as_timed = fold_with_append_times(log)
    refolded, _ = fold_all(as_timed)
    assert refolded == run
