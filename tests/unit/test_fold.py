"""The fold's rules, told as stories over plain lists of events."""
from __future__ import annotations

from datetime import timedelta

from tests.builders import T0, RunScript, fold_all


def test_a_created_run_is_pending_with_its_frozen_documents():
    script = RunScript(docs=3)
    run, outcomes = fold_all([script.created()])
    assert outcomes[0].accepted
    assert run.status == "pending"
    assert run.total_document_count == 3
    assert run.created_at == T0 + timedelta(seconds=1)
    assert {d.status for d in run.documents.values()} == {"pending"}


def test_lifecycle_pending_queued_running_completed_with_timing_from_envelopes():
    script = RunScript(docs=2, n=3)
    events = [script.created(), script.queued(), script.started(), *script.all_passes()]
    run, outcomes = fold_all(events)
    assert all(o.accepted for o in outcomes)
    assert run.status == "completed"
    assert run.started_at == events[2].occurred_at
    assert run.completed_at == events[-1].occurred_at
    assert run.duration_ms == int((events[-1].occurred_at - events[2].occurred_at).total_seconds() * 1000)
    assert (run.completed_document_count, run.error_count, run.document_count) == (2, 0, 2)
    assert run.score == 1.0


def test_first_pass_starts_a_queued_run_when_no_run_started_came():
    script = RunScript(docs=1)
    events = [script.created(), script.queued(), script.passed("doc_0", 0)]
    run, _ = fold_all(events)
    assert run.status == "running"
    assert run.started_at == events[2].occurred_at


def test_a_duplicate_pass_is_a_rejected_no_op():
    script = RunScript(docs=1)
    first = script.passed("doc_0", 0)
    run, outcomes = fold_all([script.created(), script.queued(), first, first, script.passed("doc_0", 0)])
    assert [o.accepted for o in outcomes] == [True, True, True, False, False]
    assert "already completed" in outcomes[3].reason
    assert run.document_count == 1 and len(run.documents["doc_0"].passes) == 1


def test_pass_for_unknown_document_or_out_of_range_index_is_rejected():
    script = RunScript(docs=1, n=3)
    run, outcomes = fold_all([script.created(), script.passed("doc_x", 0), script.passed("doc_0", 3)])
    assert outcomes[1].reason == "unknown document 'doc_x'"
    assert outcomes[2].reason == "pass_index 3 out of range for n_consensus 3"
    assert run.documents["doc_0"].passes == {}


def test_events_for_a_run_that_does_not_exist_are_rejected():
    script = RunScript()
    _, outcomes = fold_all([script.passed("doc_0", 0), script.queued(), script.started(), script.cancel()])
    assert all(not o.accepted and o.reason == "unknown run" for o in outcomes)


def test_cancel_stops_the_run_and_later_passes_are_rejected():
    script = RunScript(docs=2)
    events = [script.created(), script.queued(), script.passed("doc_0", 0), script.cancel("enough"),
              script.passed("doc_0", 1)]
    run, outcomes = fold_all(events)
    assert run.status == "cancelled" and run.cancel_reason == "enough"
    assert run.completed_at == events[3].occurred_at
    assert outcomes[4].reason == "run is cancelled"


def test_a_second_terminal_event_is_rejected():
    script = RunScript(docs=1)
    run, outcomes = fold_all([script.created(), *script.all_passes(), script.cancel(), script.run_failed()])
    assert run.status == "completed"
    assert outcomes[-2].reason == "run is already completed"
    assert outcomes[-1].reason == "run is already completed"


def test_cancel_of_a_cancelled_run_is_rejected_and_changes_nothing():
    script = RunScript()
    run, outcomes = fold_all([script.created(), script.cancel("first"), script.cancel("second")])
    assert run.cancel_reason == "first" and not outcomes[-1].accepted


def test_run_failed_puts_the_run_in_error_with_its_message():
    script = RunScript()
    run, _ = fold_all([script.created(), script.queued(), script.run_failed("broker gone")])
    assert run.status == "error" and run.error["message"] == "broker gone"


def test_queue_is_only_allowed_from_pending_but_a_start_is_a_timing_fact_whenever_it_comes():
    script = RunScript()
    events = [script.created(), script.started(), script.queued(), script.started()]
    run, outcomes = fold_all(events)
    assert outcomes[2].reason == "cannot queue a running run"
    assert outcomes[3].accepted and run.started_at == events[1].occurred_at


def test_started_at_is_the_earliest_start_or_pass_whatever_the_arrival_order():
    """[RunStarted t=5, pass t=9] and the reverse fold to the same started_at."""
    script = RunScript(docs=1, n=3)
    created = script.created()
    script.tick = 4
    started = script.started()  # t=5
    script.tick = 8
    first_pass = script.passed("doc_0", 0)  # t=9
    in_order, _ = fold_all([created, started, first_pass])
    reversed_, outcomes = fold_all([created, first_pass, started])
    assert all(o.accepted for o in outcomes)
    assert in_order.started_at == reversed_.started_at == T0 + timedelta(seconds=5)
    assert in_order == reversed_


def test_a_start_or_a_retry_that_arrives_after_the_end_still_moves_started_at():
    script = RunScript(docs=1, n=3)
    created = script.created()
    script.tick = 0
    early_start, early_retry = script.started(), script.failed("doc_0", 1, final=False)  # t=1, t=2
    script.tick = 10
    facts = [script.passed("doc_0", 0), script.failed("doc_0", 1, attempt=2), script.passed("doc_0", 2)]
    late, outcomes = fold_all([created, *facts, early_retry, early_start])
    on_time, _ = fold_all([created, early_start, early_retry, *facts])
    assert late.status == "completed" and all(o.accepted for o in outcomes)
    assert late == on_time
    assert late.started_at == T0 + timedelta(seconds=1)
    assert late.documents["doc_0"].attempt == 2


def test_document_with_some_failed_passes_is_still_scored():
    script = RunScript(docs=1, n=3)
    events = [script.created(), script.passed("doc_0", 0), script.failed("doc_0", 1), script.passed("doc_0", 2)]
    run, _ = fold_all(events)
    doc = run.documents["doc_0"]
    assert doc.status == "completed" and run.status == "completed"
    assert doc.score is not None and doc.score < 1.0  # the missing voter counts against likelihood


def test_all_documents_failing_ends_the_run_in_error():
    script = RunScript(docs=2, n=3)
    fails = [script.failed(d, i) for d in script.doc_ids for i in range(3)]
    run, _ = fold_all([script.created(), *fails])
    assert run.status == "error"
    assert run.error == {"message": "all 2 documents failed", "code": "all_documents_failed"}
    assert (run.error_count, run.completed_document_count, run.document_count) == (2, 0, 2)
    assert run.score is None


def test_one_scored_document_is_enough_for_completed():
    script = RunScript(docs=2, n=3)
    events = [script.created(), *[script.failed("doc_0", i) for i in range(3)],
              *[script.passed("doc_1", i) for i in range(3)]]
    run, _ = fold_all(events)
    assert run.status == "completed"
    assert (run.error_count, run.completed_document_count) == (1, 1)


def test_retries_raise_the_attempt_and_keep_the_document_running():
    script = RunScript(docs=1, n=3)
    events = [script.created(), script.failed("doc_0", 0, final=False, attempt=1),
              script.failed("doc_0", 0, final=False, attempt=2), script.passed("doc_0", 0, attempt=3)]
    run, outcomes = fold_all(events)
    doc = run.documents["doc_0"]
    assert all(o.accepted for o in outcomes)
    assert doc.attempt == 3 and doc.status == "running" and run.document_count == 1


def test_a_pass_after_a_final_failure_of_the_same_pass_is_rejected():
    script = RunScript(docs=1)
    _, outcomes = fold_all([script.created(), script.failed("doc_0", 0), script.passed("doc_0", 0)])
    assert outcomes[-1].reason == "pass 0 of document 'doc_0' already failed"


def test_an_output_of_the_wrong_shape_is_rejected():
    script = RunScript(docs=1, block_type="classifier")
    _, outcomes = fold_all([script.created(), script.passed("doc_0", 0, output={"label": "x"})])
    assert not outcomes[-1].accepted and "category" in outcomes[-1].reason


def test_another_organisation_cannot_touch_a_run():
    script = RunScript(docs=1)
    intruder = script.event(script.passed("doc_0", 0).payload, org_id="org_b")
    run, outcomes = fold_all([script.created(), intruder])
    assert "does not own" in outcomes[-1].reason and run.documents["doc_0"].passes == {}


def test_a_run_created_twice_keeps_the_first():
    script = RunScript()
    first = script.created()
    run, outcomes = fold_all([first, RunScript(docs=5).created()])
    assert outcomes[1].reason == "run already created" and run.total_document_count == 2


def test_counters_track_documents_with_any_result():
    script = RunScript(docs=3, n=3)
    events = [script.created(), script.passed("doc_0", 0), script.failed("doc_1", 2),
              script.failed("doc_2", 0, final=False)]
    run, _ = fold_all(events)
    assert (run.document_count, run.completed_document_count, run.error_count) == (2, 0, 0)
    assert run.status == "running"


def test_a_run_whose_block_config_the_engine_cannot_use_is_rejected_not_a_crash():
    script = RunScript(config={"numeric_tolerance": "lots"})
    run, outcomes = fold_all([script.created(), script.passed("doc_0", 0)])
    assert run is None
    assert outcomes[0].reason.startswith("unusable block config: numeric_tolerance")
