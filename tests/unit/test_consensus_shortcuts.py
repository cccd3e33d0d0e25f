"""The engine's shortcuts give its general path's numbers to the digit: the bulk
similarity matrix equals item_similarity pair by pair, identical lists skip alignment,
plainly equal leaf votes skip their written forms, equal votes are measured once.

Alignment (and so every consensus digit) depends on these values; the bulk path is only
a faster way to compute the same numbers, whatever mix of kinds the items hold.
"""
from __future__ import annotations

import math
import os
import random

from hypothesis import given, settings, strategies as st
from rapidfuzz.distance import Indel

from projections.domain.consensus.align import align_by_content, two_rounds
from projections.domain.consensus.batch import BATCH_CELLS, similarity_matrix
from projections.domain.consensus.extract import alignment_work
from projections.domain.consensus.limits import MAX_WALK_DEPTH
from projections.domain.consensus.normalize import canonical, numbers_close
from projections.domain.consensus.similarity import is_flat, item_similarity
from projections.domain.consensus.vote import (
    _number_key, _number_supports, _plainly_unanimous, _symmetric_sums, _unanimous
)

FAST = settings(max_examples=int(os.environ.get("CONSENSUS_EXAMPLES", "150")), deadline=None)

texts = st.sampled_from(["ACME", "acme", "Acmé!", "", "x", "steel bolt", "Straße", "a" * 300]) | st.text(max_size=80)
numbers = (
    st.sampled_from([0, 0.0, -0.0, 1, 1.005, 1.01, 2, 100, -100.5, 2**52 - 1, 2**52, 2**60, 1e300, 2.0**1000])
    | st.sampled_from([math.inf, -math.inf, math.nan, 5e-324, True, False])
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
)
scalars = st.none() | st.booleans() | numbers | texts
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("ab"), inner, max_size=2),
                      max_leaves=6)
keys = st.sampled_from(["sku", "description", "qty", "price", "extra"])
objects = st.dictionaries(keys, values, max_size=5)
uniform = st.fixed_dictionaries({"sku": texts, "description": texts, "qty": numbers, "price": numbers})
items = st.lists(uniform, min_size=1, max_size=7) | st.lists(objects, min_size=1, max_size=7) | st.lists(
    values, min_size=1, max_size=7)


def pairwise(rows, cols, tolerance):
    return [[item_similarity(r, c, tolerance) for c in cols] for r in rows]


def same_digits(a, b) -> bool:
    return len(a) == len(b) and all(
        len(x) == len(y) and all(u == v or (u != u and v != v) for u, v in zip(x, y)) for x, y in zip(a, b))


@FAST
@given(items, items, st.sampled_from([0.0, 0.01, 0.1, -0.01]))
def test_matrix_equals_pairwise(rows, cols, tolerance):
    matrix = similarity_matrix(rows, cols, tolerance)
    expected = pairwise(rows, cols, tolerance)
    assert same_digits(matrix, expected)
    assert all(type(v) is float for line in matrix for v in line)


def test_invoice_lines_take_the_bulk_path_and_agree():
    rng = random.Random(5)
    words = "steel bolt washer hex nut bracket panel cable".split()

    def line(k):
        qty = rng.randint(1, 20)
        price = round(rng.uniform(0.5, 500), 2)
        return {"sku": f"SKU-{k}", "description": " ".join(rng.sample(words, 3)), "quantity": qty,
                "unit_price": price, "amount": round(qty * price, 2)}

    rows, cols = [line(k) for k in range(9)], [line(k) for k in range(11)]
    cols[3].pop("amount")
    cols[4]["quantity"] = None
    assert len(rows) * len(cols) >= BATCH_CELLS
    assert same_digits(similarity_matrix(rows, cols, 0.01), pairwise(rows, cols, 0.01))


passes = st.lists(st.lists(values, max_size=6), min_size=1, max_size=6)


@FAST
@given(passes, st.lists(st.booleans(), min_size=6, max_size=6), st.booleans())
def test_identical_lists_skip_the_rounds_with_the_same_rows(lists, missing, exact):
    """Passes whose lists are written identically (duplicates, NaN next to null and all)
    get exactly the rows, in the same order and insertion order, the two rounds give."""
    same = [None if gone and p else list(lists[0]) for p, gone in enumerate(missing[: len(lists)])]
    forms = {p: canonical(items) for p, items in enumerate(same) if items is not None}
    expected = two_rounds(same, forms, 0.01, exact)
    rows = align_by_content(same, 0.01, exact)
    assert [list(row.items()) for row in rows] == [list(row.items()) for row in expected]


def test_different_lists_still_take_the_rounds():
    lists = [[{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}], [{"sku": "B", "qty": 2}, {"sku": "A", "qty": 1}]]
    assert align_by_content(lists, 0.01) == [{0: 0, 1: 1}, {0: 1, 1: 0}]


leaf_votes = st.lists(st.sampled_from([0, 0.0, -0.0, 1, 1.0, True, False, None, "", "a", "A", 1e16, math.nan, math.inf])
                      | scalars, min_size=1, max_size=6)


@FAST
@given(leaf_votes, st.integers(0, 5))
def test_plain_unanimity_only_where_the_written_forms_agree(votes, copies):
    """A leaf is called unanimous without writing forms only where the forms would say so
    (0.0 beside -0.0, 1 beside 1.0 or True, NaN beside null are not)."""
    votes = votes + [votes[0]] * copies
    present = list(range(len(votes)))
    if _plainly_unanimous(votes, present):
        assert _unanimous(votes, present, {i: canonical(v) for i, v in enumerate(votes)})


def test_plain_unanimity_covers_the_common_leaves():
    for value in ("ACME Corp", 3, 10.99, True, None):
        assert _plainly_unanimous([value, value, value], [0, 1, 2])
    for votes in ([0.0, -0.0], [1, 1.0], [1, True], [math.nan, math.nan], [None, math.nan], [[1], [1]]):
        assert not _plainly_unanimous(votes, [0, 1])


def every_pair_sums(members, measure):
    """Engine version 2's sums as first written: every unordered pair measured."""
    grades = {i: [] for i in members}
    for a, i in enumerate(members):
        for j in members[a:]:
            grade = measure(i, j)
            grades[i].append(grade)
            if j != i:
                grades[j].append(grade)
    return {i: math.fsum(values) for i, values in grades.items()}


close_numbers = st.lists(st.sampled_from([0, 0.0, -0.0, 1, 1.0, 1.005, 2**60, 2**60 + 1, 2.0**60, 2.0**1001, math.nan,
                                          math.inf, -math.inf]) | st.integers(-3, 3) | st.floats(), min_size=1, max_size=9)


@FAST
@given(close_numbers, st.sampled_from([0.0, 0.01, 0.5]))
def test_grouped_number_supports_equal_every_pair(votes, tolerance):
    members = list(range(len(votes)))
    close = lambda i, j: 1.0 if numbers_close(votes[i], votes[j], tolerance) else 0.0
    expected = every_pair_sums(members, close)
    assert _symmetric_sums(members, lambda i: _number_key(votes[i], i), close) == expected
    assert _number_supports(votes, members, tolerance) == expected


@FAST
@given(st.lists(st.sampled_from(["steel bolt washer", "steel bolt washers", "", "nut"]) | st.text(max_size=30),
                min_size=1, max_size=9))
def test_grouped_text_supports_equal_every_pair(texts):
    members = list(range(len(texts)))
    measure = lambda i, j: Indel.normalized_similarity(texts[i], texts[j])
    assert _symmetric_sums(members, texts.__getitem__, measure) == every_pair_sums(members, measure)


def node_by_node_work(output, enclosing=0, depth=1):
    """alignment_work as its definition reads, recursively (shallow inputs only)."""
    work = enclosing
    if depth > MAX_WALK_DEPTH or not isinstance(output, (dict, list)):
        return work
    children = output.values() if isinstance(output, dict) else output
    inner = enclosing + (len(output) if isinstance(output, list) else 0)
    return work + sum(node_by_node_work(child, inner, depth + 1) for child in children)


@FAST
@given(values)
def test_alignment_work_counts_every_value_under_its_lists(output):
    assert alignment_work(output) == node_by_node_work(output)


flat_items = scalars | st.dictionaries(keys, scalars, max_size=5)


@FAST
@given(flat_items, flat_items, st.sampled_from([0.0, 0.01, 0.1]))
def test_flat_items_are_as_similar_both_ways_round(a, b, tolerance):
    """Medoids measure each pair of flat items once: that needs symmetry to the digit."""
    assert is_flat(a) and is_flat(b)
    forward, backward = item_similarity(a, b, tolerance), item_similarity(b, a, tolerance)
    assert forward == backward or (forward != forward and backward != backward)


def test_lists_are_not_flat():
    assert not is_flat([1]) and not is_flat({"a": [1]}) and not is_flat({"a": {"b": 1}})
