"""Same pass facts, any interleaving, any duplicates: the same final state.

Pass facts are completions and final failures. (Retries are attempts, not facts: one
that arrives after its run finished is rejected, as the log order says.)"""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import RunScript, fold_all

LABELS = ["invoice", "receipt", "letter"]


@st.composite
def pass_facts(draw):
    docs, n = draw(st.integers(1, 3)), draw(st.sampled_from([3, 5]))
    script = RunScript(docs=docs, n=n)
    created = script.created()
    facts = []
    for doc in script.doc_ids:
        for i in range(n):
            if draw(st.booleans()) or draw(st.booleans()):
                facts.append(script.passed(doc, i, {"category": draw(st.sampled_from(LABELS))}))
            else:
                facts.append(script.failed(doc, i, message=f"fail {doc}/{i}"))
    keep = draw(st.integers(0, len(facts)))  # sometimes the run is still in flight
    return created, facts[:keep] if draw(st.booleans()) else facts


@settings(max_examples=150, deadline=None)
@given(pass_facts(), st.randoms(use_true_random=False), st.data())
def test_any_interleaving_with_duplicates_gives_the_same_state(run, rnd, data):
    created, facts = run
    reference, _ = fold_all([created, *facts])
    shuffled = list(facts)
    rnd.shuffle(shuffled)
    duplicates = data.draw(st.lists(st.sampled_from(facts), max_size=5)) if facts else []
    for dup in duplicates:
        shuffled.insert(rnd.randrange(len(shuffled) + 1), dup)
    state, _ = fold_all([created, *shuffled])
    assert state == reference


@settings(max_examples=50, deadline=None)
@given(pass_facts())
def test_counters_agree_with_the_documents(run):
    created, facts = run
    state, _ = fold_all([created, *facts])
    docs = state.documents.values()
    assert state.completed_document_count == sum(d.status == "completed" for d in docs)
    assert state.error_count == sum(d.status == "error" for d in docs)
    assert state.document_count == sum(bool(d.passes) for d in docs)
    finished = state.terminal_document_count == state.total_document_count
    assert (state.status in ("completed", "error")) == finished


@settings(max_examples=50, deadline=None)
@given(pass_facts())
def test_a_lifecycle_only_fold_agrees_on_everything_but_the_scores(run):
    from dataclasses import replace

    from projections.fold import no_scores

    created, facts = run
    full, _ = fold_all([created, *facts])
    light, _ = fold_all([created, *facts], score=no_scores)
    unscored = {d: replace(doc, score=None, consensus=None) for d, doc in full.documents.items()}
    assert light.documents == unscored
    assert (light.status, light.completed_document_count, light.error_count, light.document_count,
            light.completed_at) == (full.status, full.completed_document_count, full.error_count,
                                    full.document_count, full.completed_at)
