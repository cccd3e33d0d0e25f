"""The fold's state helpers: evolve() is dataclasses.replace, faster; a run's document ids
follow its spec, whichever spec object it holds."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import pytest

from projections.domain.state import DocumentState, PassFact, RunState, evolve

AT = datetime(2026, 1, 1, tzinfo=timezone.utc)


def a_run(*doc_ids: str) -> RunState:
    spec = {"n_consensus": 3, "documents": [{"document_id": d} for d in doc_ids]}
    return RunState("run_1", "org_a", spec, AT, documents={"d1": DocumentState("d1", 0, "d1.json", {})})


def test_evolve_gives_what_dataclasses_replace_gives():
    run = a_run("d1", "d2")
    for changes in ({}, {"status": "running", "started_at": AT}, {"documents": {}, "score_total": "1/2"}):
        assert evolve(run, **changes) == dataclasses.replace(run, **changes)
    fact = PassFact("completed", 1, AT)
    assert evolve(fact, output={"a": 1}) == dataclasses.replace(fact, output={"a": 1})
    assert evolve(run, status="running") is not run and run.status == "pending"  # the original is untouched


def test_evolve_refuses_a_name_that_is_not_a_field():
    with pytest.raises(TypeError, match="no field 'stauts'"):
        evolve(a_run("d1"), stauts="running")


def test_document_ids_follow_the_spec_object_the_run_holds():
    first = a_run("d1", "d2")
    assert first.document_ids == {"d1", "d2"}
    assert evolve(first, status="running").document_ids == {"d1", "d2"}
    for i in range(600):  # many specs come and go: a recycled object id never answers for another spec
        assert a_run(f"x{i}").document_ids == {f"x{i}"}
