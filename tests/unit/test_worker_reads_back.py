"""What a worker reads back from the log decides what it runs next (services/worker/harness.py).

A pass it finished after retries must not run again when the log hands back the earlier
attempts' retries after the worker sent the pass's fact: only the fact itself, read back,
ends the wait. Runs a block twice would cost the user a second call of the model."""
from __future__ import annotations

from services.worker.harness import Worker
from tests.builders import RunScript


def a_run_being_worked(run_id: str):
    """A worker (no log, no producer: events are applied by hand) that has read the run's
    creation and start; its script and the run's work."""
    script = RunScript(run_id=run_id, docs=1, n=3)
    worker = Worker(block=lambda *args: None, producer=None, log_=None, org_id=None)
    for event in (script.created(), script.started()):
        worker._apply(0, event)
    return script, worker, worker.runs[run_id]


def test_a_retry_read_back_after_the_pass_was_sent_does_not_run_it_again():
    script, worker, work = a_run_being_worked("run_w")
    key = ("doc_0", 0)
    work.emitted.add(key)  # two retries, then the pass's fact, all sent; the log is behind
    for attempt in (1, 2):
        worker._apply(0, script.failed("doc_0", 0, final=False, attempt=attempt))
        assert key not in work.missing()  # read back late: not a reason to run the pass again
    assert work.retried[key] == 2
    worker._apply(0, script.passed("doc_0", 0, attempt=3))
    assert key not in work.emitted and key not in work.missing()  # the fact itself, on the log
    assert ("doc_0", 1) in work.missing()


def test_a_final_failure_read_back_ends_the_wait_too():
    script, worker, work = a_run_being_worked("run_f")
    work.emitted.add(("doc_0", 2))
    worker._apply(0, script.failed("doc_0", 2, final=True, attempt=3))
    assert ("doc_0", 2) not in work.emitted and ("doc_0", 2) not in work.missing()
