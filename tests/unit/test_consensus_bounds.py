"""The engine's work per document is bounded and it never raises on a JSON-like output.

Counts, not clocks: the cost bound is shown by counting item comparisons (the part that
used to grow with the square of a list's length); bench/bench_consensus.py times it.
"""
from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from projections.domain.consensus import DocumentConsensus, align, compute_consensus
from projections.domain.consensus.limits import BAND_CANDIDATES, FIELD_CANDIDATES, MAX_WALK_DEPTH

EXAMPLES = settings(max_examples=int(os.environ.get("CONSENSUS_EXAMPLES", "150")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
BLOCKS = [("extract", {}), ("for_each", {"key_field": "k"}), ("for_each", {}), ("classifier", {}), ("split", {})]


def nested(depth: int, leaf):
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"a": value}
    return value


@pytest.mark.parametrize("block_type,config", BLOCKS)
@pytest.mark.parametrize("depth", [250, 600, 5000])
def test_deep_outputs_never_raise_recursion_error(block_type, config, depth):
    votes = [{"items": nested(depth, "x"), "k": 1, "category": nested(depth, 1)}, nested(depth, "y"), None]
    result = compute_consensus(block_type, config, votes)
    assert 0.0 <= result.score <= 1.0


def test_containers_below_the_depth_limit_are_one_leaf_voted_by_equality():
    deep = nested(MAX_WALK_DEPTH + 10, "x")
    result = compute_consensus("extract", {}, [deep, deep, nested(MAX_WALK_DEPTH + 10, "y")])
    assert len(result.targets) == 1 and result.targets[0].score == 2 / 3
    assert max(len(t.path.split(".")) for t in result.targets) <= MAX_WALK_DEPTH


class CountingSimilarity:
    def __init__(self, monkeypatch):
        self.calls = 0
        real = align.item_similarity

        def counted(a, b, tolerance):
            self.calls += 1
            return real(a, b, tolerance)

        monkeypatch.setattr(align, "item_similarity", counted)


def distinct_lists(passes: int, items: int) -> list:
    """Adversarial for alignment: no item identical across passes, every pair similar."""
    return [{"rows": [{"sku": f"S{k}", "note": f"p{p} r{k}", "n": k % 3} for k in range(items)]} for p in range(passes)]


@pytest.mark.parametrize("items", [400, 2000])
def test_long_lists_cost_a_bounded_number_of_comparisons_per_item(monkeypatch, items):
    """Before: every unmatched item was compared with every row (7 x 400 items: over a
    million comparisons). Now at most BAND_CANDIDATES + FIELD_CANDIDATES per item and round,
    plus the medoids."""
    counter = CountingSimilarity(monkeypatch)
    passes = 7
    compute_consensus("extract", {}, distinct_lists(passes, items))
    medoids = items * passes * passes
    assert counter.calls <= 2 * passes * items * (BAND_CANDIDATES + FIELD_CANDIDATES) + medoids


def test_the_linear_path_finds_an_item_moved_far_and_changed_by_its_identifying_field():
    """Every item of the second pass changed (nothing matches identically), and S0 moved
    to the end: the rows near its position are others', but its sku names its row."""
    truth = [{"sku": f"S{k}", "qty": k % 7, "text": f"item number {k}"} for k in range(500)]
    changed = [dict(item, qty=item["qty"] + 100) for item in truth]
    moved = changed[1:] + changed[:1]
    result = compute_consensus("extract", {}, [{"rows": truth}, {"rows": moved}, {"rows": truth}])
    rows = {t.path: t for t in result.targets}["rows.*.sku"].rows
    assert len(rows) == 500 and all(row.score == 1.0 for row in rows)


def test_the_linear_path_still_aligns_shifted_and_changed_items():
    rng = random.Random(5)
    truth = [{"sku": f"S{k}", "qty": rng.randint(1, 9), "text": f"item number {k}"} for k in range(600)]
    shifted = [{"sku": "NEW", "qty": 1, "text": "invented"}] * 3 + truth
    changed = [dict(item, qty=item["qty"] + 1) if k % 10 == 0 else item for k, item in enumerate(truth)]
    result = compute_consensus("extract", {}, [{"rows": truth}, {"rows": shifted}, {"rows": changed}])
    by_path = {t.path: t for t in result.targets}
    assert by_path["rows.*.sku"].value == [item["sku"] for item in truth]
    assert len(by_path["rows.*.sku"].rows) == 603  # the 600 rows, and 3 dropped ones for the invented items


json_scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
                | st.floats(allow_nan=True, allow_infinity=True)
                | st.text(max_size=60) | st.sampled_from(["a\u0000", "a\ufffd", "\ud800", "x" * 5000, "Straße", ""]))
json_keys = st.text(max_size=8) | st.sampled_from(["a", "k", "items", "category", "splits", "name", "pages", "*", "a.b"])
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(json_keys, inner, max_size=5),
    max_leaves=40,
)
outputs = json_values | st.fixed_dictionaries({"items": st.lists(json_values, max_size=30)}) | st.fixed_dictionaries(
    {"splits": st.lists(st.fixed_dictionaries({"name": json_values, "pages": st.lists(json_values, max_size=4)}),
                        max_size=4)})


@EXAMPLES
@given(st.sampled_from(BLOCKS), st.lists(outputs | st.none(), min_size=1, max_size=7), st.integers(0, 40))
def test_no_output_makes_the_engine_raise(block, votes, depth):
    """Random and hostile outputs (NaN, huge integers, lone surrogates, control
    characters in keys, long text, odd shapes, deep nesting): a result, never an exception."""
    block_type, config = block
    if depth and votes[0] is not None:
        votes = [nested(depth, votes[0])] + votes[1:]
    result = compute_consensus(block_type, config, votes)
    assert isinstance(result, DocumentConsensus)
    assert result.score is None or 0.0 <= result.score <= 1.0


def test_permuting_passes_of_a_large_document_never_changes_a_score():
    """The linear path, like the exact one, depends on the passes' contents only."""
    rng = random.Random(8)
    truth = [{"sku": f"S{k}", "qty": rng.randint(1, 5), "text": f"part {rng.randint(0, 40)}"} for k in range(150)]
    votes = []
    for _ in range(5):
        rows = [dict(item, qty=item["qty"] + 1) if rng.random() < 0.3 else item for item in truth if rng.random() > 0.05]
        i, j = rng.randrange(len(rows)), rng.randrange(len(rows))
        rows[i], rows[j] = rows[j], rows[i]
        votes.append({"rows": rows})
    signature = lambda doc: (doc.score, [(t.path, t.score, [(r.score, r.row_presence_score) for r in t.rows])
                                         for t in doc.targets])
    expected = signature(compute_consensus("extract", {}, votes))
    for _ in range(4):
        rng.shuffle(votes)
        assert signature(compute_consensus("extract", {}, votes)) == expected
