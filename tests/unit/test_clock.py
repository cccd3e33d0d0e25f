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


def one_document_run(stamps: list[datetime]):
    script = RunScript(docs=1, n=3)
    created = script.event(script.created().payload, occurred_at=APPENDED - timedelta(minutes=1))
    passes = [script.passed("doc_0", i, at=at) for i, at in enumerate(stamps)]
    return [(created, APPENDED - timedelta(minutes=1)), *[(p, APPENDED) for p in passes]]


def test_a_pass_stamped_in_2001_cannot_make_a_25_year_duration():
    ancient = datetime(2001, 1, 1, tzinfo=timezone.utc)
    run, outcomes = fold_appended(one_document_run([ancient, APPENDED, APPENDED]))
    assert run.status == "completed"
    assert run.started_at == APPENDED - MAX_PRODUCER_LAG
    assert run.duration_ms == MAX_PRODUCER_LAG // timedelta(milliseconds=1)
    assert outcomes[1].accepted and "producer clock" in outcomes[1].reason and "2001-01-01" in outcomes[1].reason


def test_a_pass_stamped_an_hour_ahead_is_timed_at_its_append():
    ahead = APPENDED + timedelta(hours=1)
    run, outcomes = fold_appended(one_document_run([APPENDED, APPENDED, ahead]))
    assert run.completed_at == APPENDED  # never after the log took it
    assert run.documents["doc_0"].passes[2].occurred_at == APPENDED
    assert "after the log's append time" in outcomes[-1].reason


def test_stamps_within_the_window_are_kept_and_small_skews_go_unnoted():
    stamps = [APPENDED - timedelta(days=6), APPENDED - timedelta(seconds=3), APPENDED + timedelta(milliseconds=300)]
    run, outcomes = fold_appended(one_document_run(stamps))
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
