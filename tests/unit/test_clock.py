"""Producer clocks are bounded by the log's append time, passed to the fold as data."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from projections.domain.clock import MAX_PRODUCER_LAG
from tests.builders import RunScript

APPENDED = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def fold_appended(events_and_times):
    from projections.domain.fold import apply

    state, outcomes = None, []
    for event, appended in events_and_times:
        applied = apply(state, event, appended_at=appended)
        state, outcomes = applied.state, outcomes + [applied]
    return state, outcomes


def one_document_run(stamps: list[datetime], created_at: datetime = APPENDED - timedelta(minutes=1)):
    """A run created (and appended) at `created_at`, its three passes appended at APPENDED."""
    script = RunScript(docs=1, n=3)
    created = script.event(script.created().payload, occurred_at=created_at)
    passes = [script.passed("doc_0", i, at=at) for i, at in enumerate(stamps)]
    return [(created, created_at), *[(p, APPENDED) for p in passes]]


def test_a_pass_stamped_25_years_early_makes_a_two_second_run_last_two_seconds():
    """The issue's story: the run is created at T, a worker whose clock says 2001 sends a
    pass one second later, two more passes come at T + 2 s. No fact about a run precedes
    its creation, so the run lasted (at most) the two seconds it took."""
    script = RunScript(docs=1, n=3)
    ancient = datetime(2001, 1, 1, tzinfo=timezone.utc)
    created = script.event(script.created().payload, occurred_at=APPENDED)
    log = [(created, APPENDED),
           (script.passed("doc_0", 0, at=ancient), APPENDED + timedelta(seconds=1)),
           (script.passed("doc_0", 1, at=APPENDED + timedelta(seconds=2)), APPENDED + timedelta(seconds=2)),
           (script.passed("doc_0", 2, at=APPENDED + timedelta(seconds=2)), APPENDED + timedelta(seconds=2))]
    run, outcomes = fold_appended(log)
    assert run.status == "completed"
    assert run.started_at == run.created_at == APPENDED
    assert run.duration_ms == 2000  # not 604,799,998 (a week) nor 25 years
    note = outcomes[1].reason
    assert outcomes[1].accepted and "before its run's creation" in note and "2001-01-01" in note


def test_a_pass_stamped_before_its_run_within_the_lag_window_is_still_timed_at_the_creation():
    run, outcomes = fold_appended(one_document_run([APPENDED - timedelta(days=2), APPENDED, APPENDED]))
    assert run.started_at == run.created_at == APPENDED - timedelta(minutes=1)
    assert "before its run's creation" in outcomes[1].reason


def test_a_run_created_from_a_stale_stamp_is_still_bounded_by_the_lag():
    """The creating event has no earlier fact to follow: the lag bounds it."""
    script = RunScript(docs=1, n=3)
    created = script.event(script.created().payload, occurred_at=datetime(2001, 1, 1, tzinfo=timezone.utc))
    run, outcomes = fold_appended([(created, APPENDED)])
    assert run.created_at == APPENDED - MAX_PRODUCER_LAG
    assert f"more than {MAX_PRODUCER_LAG.days} days before" in outcomes[0].reason


def test_when_the_logs_clock_steps_back_below_the_creation_causality_wins():
    """A log whose clock stepped back appends a pass 'before' its run was created: the
    pass is timed at the creation, so no duration is negative."""
    script = RunScript(docs=1, n=3)
    created = script.event(script.created().payload, occurred_at=APPENDED)
    back = APPENDED - timedelta(seconds=30)
    run, _ = fold_appended([(created, APPENDED), *[(script.passed("doc_0", i, at=back), back) for i in range(3)]])
    assert run.started_at == run.completed_at == run.created_at
    assert run.duration_ms == 0


def test_a_pass_stamped_an_hour_ahead_is_timed_at_its_append():
    ahead = APPENDED + timedelta(hours=1)
    run, outcomes = fold_appended(one_document_run([APPENDED, APPENDED, ahead]))
    assert run.completed_at == APPENDED  # never after the log took it
    assert run.documents["doc_0"].passes[2].occurred_at == APPENDED
    assert "after the log's append time" in outcomes[-1].reason


def test_stamps_within_the_window_are_kept_and_small_skews_go_unnoted():
    stamps = [APPENDED - timedelta(days=6), APPENDED - timedelta(seconds=3), APPENDED + timedelta(milliseconds=300)]
    run, outcomes = fold_appended(one_document_run(stamps, created_at=APPENDED - timedelta(days=6, hours=1)))
    assert run.started_at == stamps[0]
    assert run.completed_at == APPENDED  # 300 ms ahead: clamped, not noted
    assert all(o.reason is None for o in outcomes)


def test_the_same_log_and_append_times_fold_the_same_and_timed_events_refold_alike():
    from projections.domain import clock
    from tests.builders import fold_all

    log = one_document_run([datetime(2001, 1, 1, tzinfo=timezone.utc), APPENDED, APPENDED + timedelta(hours=1)])
    first, _ = fold_appended(log)
    again, _ = fold_appended(log)
    refolded, _ = fold_all([clock.timed_event(e, t) for e, t in log])  # as the event index keeps them
    assert first == again == refolded
