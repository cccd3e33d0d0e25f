"""Properties of the consensus engine that must hold for any votes (hypothesis)."""
from __future__ import annotations

import json
import os

from hypothesis import given, settings, strategies as st

from projections.domain.consensus import DocumentConsensus, compute_consensus, merge_confusions

# CONSENSUS_EXAMPLES=5000 for a deep run; the default keeps the suite fast.
FAST = settings(max_examples=int(os.environ.get("CONSENSUS_EXAMPLES", "120")), deadline=None)

texts = st.sampled_from(["ACME", "acme", "Acmé!", "Globex", "", "x", "a b", "A-B", "north"]) | st.text(
    alphabet="abcé -.", max_size=50
)
numbers = st.sampled_from([0, 0.0, 1, 1.005, 1.01, 1.02, 2, 100, 100.5, 101.5, -1]) | st.integers(-5, 5)
scalars = st.none() | st.booleans() | numbers | texts
keys = st.sampled_from(["a", "b", "c", "items"])
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=12,
)
line_items = st.lists(st.fixed_dictionaries({"sku": st.sampled_from(["A", "B", "C", "a"]), "qty": numbers}), max_size=4)
extract_outputs = st.dictionaries(keys, json_values, max_size=4) | st.fixed_dictionaries(
    {"total": numbers, "items": line_items}
)
for_each_outputs = st.fixed_dictionaries({"items": line_items})
labels = st.sampled_from(["invoice", "Invoice", "receipt", "letter"])
classifier_outputs = st.fixed_dictionaries({"category": labels})
splits = st.lists(
    st.fixed_dictionaries({"name": labels, "pages": st.lists(st.integers(1, 5), max_size=3)}), max_size=3
)
split_outputs = st.fixed_dictionaries({"splits": splits})

CASES = {
    "extract": ({}, extract_outputs),
    "for_each": ({"key_field": "sku"}, for_each_outputs),
    "classifier": ({}, classifier_outputs),
    "split": ({}, split_outputs),
}


@st.composite
def documents(draw, block_type=None):
    block_type = block_type or draw(st.sampled_from(sorted(CASES)))
    config, outputs = CASES[block_type]
    votes = draw(st.lists(outputs | st.none(), min_size=1, max_size=5))
    return block_type, config, votes


def score_signature(doc: DocumentConsensus):
    rows = lambda t: tuple(
        (r.score, r.row_presence_score, r.present_voter_count, r.total_voter_count) for r in t.rows
    )
    return doc.score, tuple((t.path, t.score, rows(t)) for t in doc.targets)


def all_scores(doc: DocumentConsensus):
    yield doc.score
    for target in doc.targets:
        yield target.score
        for row in target.rows:
            yield row.score
            yield row.row_presence_score
    if doc.confusion:
        yield from doc.confusion.diag.values()
        yield from (flow.score for flow in doc.confusion.flows)


@FAST
@given(documents(), st.randoms(use_true_random=False))
def test_permuting_passes_never_changes_a_score(document, rnd):
    block_type, config, votes = document
    shuffled = list(votes)
    rnd.shuffle(shuffled)
    before = compute_consensus(block_type, config, votes)
    after = compute_consensus(block_type, config, shuffled)
    assert score_signature(after) == score_signature(before)


@FAST
@given(documents(), st.integers(1, 5))
def test_identical_passes_agree_fully(document, n):
    block_type, config, votes = document
    output = next((v for v in votes if v is not None), None)
    if output is None:
        return
    doc = compute_consensus(block_type, config, [output] * n)
    assert all(score == 1.0 for score in all_scores(doc) if score is not None)
    assert doc.score == 1.0


@FAST
@given(documents())
def test_every_score_is_a_likelihood(document):
    doc = compute_consensus(*document)
    assert all(0.0 <= score <= 1.0 for score in all_scores(doc) if score is not None)


@FAST
@given(documents())
def test_results_round_trip_through_json(document):
    doc = compute_consensus(*document)
    assert DocumentConsensus.from_json(json.loads(json.dumps(doc.to_json()))) == doc


@FAST
@given(documents("classifier"), st.randoms(use_true_random=False))
def test_a_classifier_tie_goes_to_the_lowest_pass_index(document, rnd):
    block_type, config, votes = document
    doc = compute_consensus(block_type, config, votes)
    cast = [v["category"].casefold() for v in votes if v is not None]
    if not cast:
        assert doc.score is None
        return
    top = max(cast.count(label) for label in cast)
    first_winner = next(label for label in cast if cast.count(label) == top)
    assert doc.value["category"].casefold() == first_winner


@FAST
@given(st.lists(documents("split"), min_size=1, max_size=4))
def test_merging_confusions_weighs_by_votes(docs):
    confusions = [c for c in (compute_consensus(*d).confusion for d in docs) if c is not None]
    merged = merge_confusions(confusions)
    for label, count in merged.vote_counts.items():
        assert count == sum(c.vote_counts.get(label, 0) for c in confusions)
        agreeing = sum(c.diag.get(label, 0.0) * c.vote_counts.get(label, 0) for c in confusions)
        assert abs(merged.diag[label] - agreeing / count) < 1e-12
    if len(confusions) == 1:
        assert merge_confusions(confusions).vote_counts == confusions[0].vote_counts


@FAST
@given(documents())
def test_every_kept_consensus_is_one_of_its_votes(document):
    doc = compute_consensus(*document)
    for target in doc.targets:
        for row in target.rows:
            if row.present_voter_count and row.consensus is not None:
                assert any(row.consensus == vote and type(row.consensus) is type(vote) for vote in row.votes)
