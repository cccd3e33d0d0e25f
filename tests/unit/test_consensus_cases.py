"""Hand-worked consensus cases: every expected likelihood below was computed by hand.

Reading guide: n = number of passes (len(votes)); a leaf's likelihood is
support / n where support = votes agreeing with the consensus (long text: summed
similarity); a field or row held by at most half of the passes holding its
container is dropped, with likelihood (containers - holders) / n.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from projections.domain.consensus import Confusion, Flow, compute_consensus, merge_confusions

A = {"sku": "A", "q": 1}
B = {"sku": "B", "q": 2}
C = {"sku": "C", "q": 3}
X = {"sku": "ZZZZ", "q": 99}
LONG = "x" * 50
LONG_TAIL = "x" * 40 + "y" * 10  # Indel vs LONG: LCS 40, distance 20, similarity 1 - 20/100 = 0.8
SPLIT_2 = {"splits": [{"name": "invoice", "pages": [1, 2]}, {"name": "receipt", "pages": [3]}]}
SPLIT_1 = {"splits": [{"name": "invoice", "pages": [1, 2, 3]}]}


@dataclass(frozen=True)
class Case:
    id: str
    block_type: str
    votes: list
    score: float | None
    targets: dict[str, float]
    config: dict = field(default_factory=dict)
    value: Any = "unchecked"
    rows: dict[str, list[tuple[float, float | None]]] = field(default_factory=dict)
    confusion: Confusion | None = None


def extract(id, votes, score, targets, **kw) -> Case:
    return Case(id, "extract", votes, score, targets, **kw)


CASES = [
    # --- extract: scalars --------------------------------------------------------------
    extract("identical passes", [{"name": "ACME", "total": 10}] * 3, 1.0, {"name": 1.0, "total": 1.0},
            value={"name": "ACME", "total": 10}),
    extract("case, accents and punctuation are normalized",
            [{"v": "ACME Corp."}, {"v": "acme  corp"}, {"v": "Acmé, Corp"}], 1.0, {"v": 1.0},
            value={"v": "ACME Corp."}),
    extract("plain majority", [{"v": "a"}, {"v": "a"}, {"v": "b"}], 2 / 3, {"v": 2 / 3}, value={"v": "a"}),
    extract("a failed pass counts against", [{"v": 1}, {"v": 1}, None], 2 / 3, {"v": 2 / 3},
            rows={"v": [(2 / 3, None)]}),
    extract("exact tie goes to the lowest pass index", [{"v": "b"}, {"v": "a"}, {"v": "a"}, {"v": "b"}],
            0.5, {"v": 0.5}, value={"v": "b"}),
    extract("key missing in one pass is an absent vote", [{"x": 1, "y": 2}, {"x": 1}, {"x": 1, "y": 2}],
            (1 + 2 / 3) / 2, {"x": 1.0, "y": 2 / 3}, value={"x": 1, "y": 2}),
    extract("key in a minority of passes is dropped; likelihood of its absence",
            [{"x": 1, "note": "hi"}, {"x": 1}, {"x": 1}], (1 + 2 / 3) / 2, {"x": 1.0, "note": 2 / 3},
            value={"x": 1}),
    extract("dropped object: every leaf below scores the absence",
            [{"x": 1, "extra": {"a": 1, "b": 2}}, {"x": 1}, {"x": 1}], (1 + 2 / 3 + 2 / 3) / 3,
            {"x": 1.0, "extra.a": 2 / 3, "extra.b": 2 / 3}, value={"x": 1}),
    extract("null is a vote for null", [{"x": None}, {"x": None}, {"x": "a"}], 2 / 3, {"x": 2 / 3},
            value={"x": None}),
    extract("null and absent are different", [{"x": None}, {}, {"x": None}], 2 / 3, {"x": 2 / 3},
            value={"x": None}),
    extract("booleans are not numbers", [{"f": True}, {"f": 1}, {"f": True}], 2 / 3, {"f": 2 / 3},
            value={"f": True}),
    extract("equal support: the most common exact spelling wins", [{"v": "ACME"}, {"v": "acme"}, {"v": "acme"}],
            1.0, {"v": 1.0}, value={"v": "acme"}),
    extract("a numeric string is not a number", [{"n": "10"}, {"n": 10}, {"n": 10}], 2 / 3, {"n": 2 / 3},
            value={"n": 10}),
    # --- extract: numbers ----------------------------------------------------------------
    extract("default 1% tolerance: 100 ~ 100.5, 102 apart; tie to pass 0",
            [{"t": 100}, {"t": 100.5}, {"t": 102}], 2 / 3, {"t": 2 / 3}, value={"t": 100}),
    extract("the value closest to all wins: 100.9 is within 1% of 100 and of 101.8",
            [{"t": 100}, {"t": 100.9}, {"t": 101.8}], 1.0, {"t": 1.0}, value={"t": 100.9}),
    extract("zero only matches zero", [{"t": 0}, {"t": 0.0}, {"t": 0.001}], 2 / 3, {"t": 2 / 3},
            value={"t": 0}),
    extract("configured 10% tolerance", [{"t": 100}, {"t": 109}, {"t": 120}], 1.0, {"t": 1.0},
            config={"numeric_tolerance": 0.1}, value={"t": 109}),
    extract("tolerance 0 is exact (1 == 1.0)", [{"t": 1}, {"t": 1.0}, {"t": 1.0000001}], 2 / 3,
            {"t": 2 / 3}, config={"numeric_tolerance": 0}),
    # --- extract: long text ----------------------------------------------------------------
    extract("long text: medoid, mean similarity (1 + 1 + 0.8) / 3",
            [{"d": LONG}, {"d": LONG_TAIL}, {"d": LONG}], 2.8 / 3, {"d": 2.8 / 3}, value={"d": LONG}),
    extract("long text with a failed pass: (1 + 0.8 + 0) / 3",
            [{"d": LONG_TAIL}, None, {"d": LONG}], 1.8 / 3, {"d": 1.8 / 3}, value={"d": LONG_TAIL}),
    extract("near-equal short strings are different votes", [{"d": "abcdef"}, {"d": "abcdeg"}, {"d": "abcdef"}],
            2 / 3, {"d": 2 / 3}),
    extract("same strings past a threshold of 5: (1 + 5/6 + 1) / 3",
            [{"d": "abcdef"}, {"d": "abcdeg"}, {"d": "abcdef"}], 17 / 18, {"d": 17 / 18},
            config={"long_text_threshold": 5}),
    # --- extract: lists ------------------------------------------------------------------
    extract("reordered list items align by content", [{"items": [A, B]}, {"items": [B, A]}, {"items": [A, B]}],
            1.0, {"items.*.sku": 1.0, "items.*.q": 1.0}, value={"items": [A, B]},
            rows={"items.*.q": [(1.0, 1.0), (1.0, 1.0)]}),
    extract("item missing in one pass", [{"items": [A, B, C]}, {"items": [A, B, C]}, {"items": [A, C]}],
            8 / 9, {"items.*.sku": 8 / 9, "items.*.q": 8 / 9}, value={"items": [A, B, C]},
            rows={"items.*.sku": [(1.0, 1.0), (2 / 3, 2 / 3), (1.0, 1.0)]}),
    extract("hallucinated item: dropped, scores its absence", [{"items": [A, B]}, {"items": [A, B]}, {"items": [A, B, X]}],
            8 / 9, {"items.*.sku": 8 / 9, "items.*.q": 8 / 9}, value={"items": [A, B]},
            rows={"items.*.sku": [(1.0, 1.0), (1.0, 1.0), (2 / 3, 1 / 3)]}),
    extract("list in a failed pass", [{"items": [A, B]}, {"items": [A, B]}, None], 2 / 3,
            {"items.*.sku": 2 / 3, "items.*.q": 2 / 3}, rows={"items.*.q": [(2 / 3, 2 / 3), (2 / 3, 2 / 3)]}),
    extract("list of scalars", [{"tags": ["red", "blue"]}, {"tags": ["blue", "red"]}, {"tags": ["red"]}],
            5 / 6, {"tags.*": 5 / 6}, value={"tags": ["red", "blue"]}),
    extract("nested lists", [
        {"orders": [{"id": "o1", "lines": [{"p": "x"}, {"p": "y"}]}]},
        {"orders": [{"id": "o1", "lines": [{"p": "x"}, {"p": "y"}]}]},
        {"orders": [{"id": "o1", "lines": [{"p": "x"}]}]},
    ], (1 + 5 / 6) / 2, {"orders.*.id": 1.0, "orders.*.lines.*.p": 5 / 6},
        rows={"orders.*.lines.*.p": [(1.0, 1.0), (2 / 3, 2 / 3)]}),
    extract("an empty list is a list without the row", [{"items": []}, {"items": [A]}, {"items": [A]}],
            2 / 3, {"items.*.sku": 2 / 3, "items.*.q": 2 / 3}, value={"items": [A]}),
    extract("empty list everywhere is one leaf", [{"items": []}] * 3, 1.0, {"items": 1.0}, value={"items": []}),
    extract("duplicate items stay two rows", [{"t": ["a", "a"]}] * 2, 1.0, {"t.*": 1.0}, value={"t": ["a", "a"]}),
    # --- extract: shapes and empties -------------------------------------------------------
    extract("object beats a scalar in a minority", [{"a": {"c": "P"}}, {"a": {"c": "P"}}, {"a": "P"}],
            2 / 3, {"a.c": 2 / 3}, value={"a": {"c": "P"}}),
    extract("shape tie: the container wins, not pass order", [{"a": None}, {"a": {"c": "P"}}],
            0.5, {"a.c": 0.5}, value={"a": {"c": "P"}}),
    extract("empty outputs from every pass", [{}, {}, {}], 1.0, {"$": 1.0}, value={}),
    extract("empty outputs and a failed pass", [{}, None, {}], 2 / 3, {"$": 2 / 3}, value={}),
    extract("every pass failed", [None, None], None, {}, value=None),
    extract("outputs that are a bare value: target $", ["a", "a", "b"], 2 / 3, {"$": 2 / 3}, value="a"),
    extract("outputs that are a bare list: target *", [[1, 2], [2, 1]], 1.0, {"*": 1.0}, value=[1, 2]),
    # --- classifier ----------------------------------------------------------------------
    Case("classifier unanimous", "classifier", [{"category": "invoice"}] * 3, 1.0, {"category": 1.0},
         value={"category": "invoice"}, confusion=Confusion({"invoice": 1.0}, (), {"invoice": 3})),
    Case("classifier majority, labels normalized, failed pass", "classifier",
         [{"category": "Invoice"}, {"category": "invoice"}, {"category": "receipt"}, None], 2 / 4,
         {"category": 0.5}, value={"category": "Invoice"},
         confusion=Confusion({"Invoice": 2 / 3}, (Flow("Invoice", "receipt", 1 / 3),), {"Invoice": 3})),
    Case("classifier tie goes to pass 0", "classifier", [{"category": "receipt"}, {"category": "invoice"}],
         0.5, {"category": 0.5}, value={"category": "receipt"},
         confusion=Confusion({"receipt": 0.5}, (Flow("receipt", "invoice", 0.5),), {"receipt": 2})),
    Case("classifier output without category votes null", "classifier",
         [{"category": "a"}, {}, {"category": "a"}], 2 / 3, {"category": 2 / 3},
         confusion=Confusion({"a": 2 / 3}, (Flow("a", "null", 1 / 3),), {"a": 3})),
    # --- split ---------------------------------------------------------------------------
    Case("split unanimous", "split", [SPLIT_2, SPLIT_2], 1.0, {"pages.1": 1.0, "pages.2": 1.0, "pages.3": 1.0},
         value=SPLIT_2, confusion=Confusion({"invoice": 1.0, "receipt": 1.0}, (), {"invoice": 4, "receipt": 2})),
    Case("split: one pass merges the receipt into the invoice", "split", [SPLIT_2, SPLIT_1, SPLIT_2],
         (1 + 1 + 2 / 3) / 3, {"pages.1": 1.0, "pages.2": 1.0, "pages.3": 2 / 3}, value=SPLIT_2,
         confusion=Confusion({"invoice": 1.0, "receipt": 2 / 3}, (Flow("receipt", "invoice", 1 / 3),),
                             {"invoice": 6, "receipt": 3})),
    Case("split: two invoices vs one (second of a name is name#2)", "split", [
        {"splits": [{"name": "invoice", "pages": [1, 2]}, {"name": "invoice", "pages": [3]}]},
        SPLIT_1,
        {"splits": [{"name": "Invoice", "pages": [1, 2]}, {"name": "invoice", "pages": [3]}]},
    ], (1 + 1 + 2 / 3) / 3, {"pages.1": 1.0, "pages.2": 1.0, "pages.3": 2 / 3},
        value={"splits": [{"name": "invoice", "pages": [1, 2]}, {"name": "invoice", "pages": [3]}]},
        rows={"pages.3": [(2 / 3, 1.0)]}),
    Case("split: page in a minority is dropped; failed pass", "split", [
        {"splits": [{"name": "invoice", "pages": [1, 2]}]},
        {"splits": [{"name": "invoice", "pages": [1]}]},
        None,
    ], (2 / 3 + 1 / 3) / 2, {"pages.1": 2 / 3, "pages.2": 1 / 3},
        value={"splits": [{"name": "invoice", "pages": [1]}]}, rows={"pages.2": [(1 / 3, 1 / 3)]}),
    Case("split: a page listed twice counts for its first split", "split",
         [{"splits": [{"name": "a", "pages": [1, 2]}, {"name": "b", "pages": [2, 3]}]}] * 2, 1.0,
         {"pages.1": 1.0, "pages.2": 1.0, "pages.3": 1.0},
         value={"splits": [{"name": "a", "pages": [1, 2]}, {"name": "b", "pages": [3]}]}),
    Case("split: no page anywhere scores the share of passes that answered", "split",
         [{"splits": []}, {"splits": []}, None], 2 / 3, {}, value={"splits": []}),
    # --- for_each ------------------------------------------------------------------------
    Case("for_each: items matched by normalized key, reordered", "for_each", [
        {"items": [{"id": "A", "v": 1}, {"id": "B", "v": 2}]},
        {"items": [{"id": "b", "v": 2}, {"id": "a", "v": 1}]},
        {"items": [{"id": "A", "v": 1}, {"id": "B", "v": 3}]},
    ], (1 + 5 / 6) / 2, {"items.*.id": 1.0, "items.*.v": 5 / 6}, config={"key_field": "id"},
        value={"items": [{"id": "A", "v": 1}, {"id": "B", "v": 2}]}),
    Case("for_each: different keys are different items", "for_each", [
        {"items": [{"id": "1", "name": "Alpha"}]},
        {"items": [{"id": "2", "name": "Alpha"}]},
        {"items": [{"id": "1", "name": "Alpha"}]},
    ], 2 / 3, {"items.*.id": 2 / 3, "items.*.name": 2 / 3}, config={"key_field": "id"},
        rows={"items.*.id": [(2 / 3, 2 / 3), (2 / 3, 1 / 3)]}),
    Case("for_each without key_field aligns by content", "for_each", [
        {"items": [{"id": "1", "name": "Alpha"}]},
        {"items": [{"id": "2", "name": "Alpha"}]},
        {"items": [{"id": "1", "name": "Alpha"}]},
    ], (2 / 3 + 1) / 2, {"items.*.id": 2 / 3, "items.*.name": 1.0},
        rows={"items.*.id": [(2 / 3, 1.0)]}),
    Case("for_each: a repeated key pairs by occurrence", "for_each", [
        {"items": [{"id": "A", "v": 1}, {"id": "A", "v": 2}]},
        {"items": [{"id": "a", "v": 1}, {"id": "A", "v": 3}]},
    ], (1 + (1 + 1 / 2) / 2) / 2, {"items.*.id": 1.0, "items.*.v": (1 + 1 / 2) / 2}, config={"key_field": "id"},
        rows={"items.*.v": [(1.0, 1.0), (0.5, 1.0)]}),
    Case("for_each: items without a key are aligned by content", "for_each", [
        {"items": [{"id": "A", "v": "x"}, {"v": "loose"}]},
        {"items": [{"v": "Loose!"}, {"id": "a", "v": "x"}]},
        {"items": [{"id": "A", "v": "x"}]},
    ], (1 + (1 + 2 / 3) / 2) / 2, {"items.*.id": 1.0, "items.*.v": (1 + 2 / 3) / 2}, config={"key_field": "id"},
        rows={"items.*.v": [(1.0, 1.0), (2 / 3, 2 / 3)]}),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hand_worked_case(case: Case):
    doc = compute_consensus(case.block_type, case.config, case.votes)
    assert doc.score == pytest.approx(case.score)
    assert {t.path: t.score for t in doc.targets} == pytest.approx(case.targets)
    if case.value != "unchecked":
        assert doc.value == case.value
    by_path = {t.path: t for t in doc.targets}
    for path, rows in case.rows.items():
        got = [(r.score, r.row_presence_score) for r in by_path[path].rows]
        assert got == [pytest.approx(row) for row in rows]
    if case.confusion is not None:
        assert doc.confusion.diag == pytest.approx(case.confusion.diag)
        assert [(f.source, f.target) for f in doc.confusion.flows] == [(f.source, f.target) for f in case.confusion.flows]
        assert [f.score for f in doc.confusion.flows] == pytest.approx([f.score for f in case.confusion.flows])
        assert doc.confusion.vote_counts == case.confusion.vote_counts


def test_targets_are_sorted_by_path_with_numbers_in_order():
    pages = list(range(1, 12))
    doc = compute_consensus("split", {}, [{"splits": [{"name": "a", "pages": pages}]}])
    assert [t.path for t in doc.targets] == [f"pages.{p}" for p in pages]


def test_a_dropped_row_shows_every_vote_and_no_consensus():
    doc = compute_consensus("extract", {}, [{"items": [A, B]}, {"items": [A, B]}, {"items": [A, B, X]}])
    dropped = {t.path: t for t in doc.targets}["items.*.sku"].rows[-1]
    assert (dropped.consensus, dropped.votes, dropped.present_voter_count) == (None, (None, None, "ZZZZ"), 1)


def test_merging_confusions_is_vote_weighted():
    first = Confusion({"a": 1.0}, (), {"a": 2})
    second = Confusion({"a": 0.5, "b": 1.0}, (Flow("a", "b", 0.5),), {"a": 4, "b": 1})
    merged = merge_confusions([first, second])
    assert merged.diag == pytest.approx({"a": (2 * 1.0 + 4 * 0.5) / 6, "b": 1.0})
    assert merged.flows == (Flow("a", "b", pytest.approx(4 * 0.5 / 6)),)
    assert merged.vote_counts == {"a": 6, "b": 1}


def test_merging_nothing_is_an_empty_confusion():
    assert merge_confusions([]) == Confusion({}, (), {})


@pytest.mark.parametrize("block_type, config", [
    ("translate", {}),
    ("extract", {"numeric_tolerance": -0.1}),
    ("extract", {"numeric_tolerance": "1%"}),
    ("extract", {"long_text_threshold": 2.5}),
    ("for_each", {"key_field": 3}),
])
def test_unusable_block_type_or_config_is_refused(block_type, config):
    with pytest.raises(ValueError):
        compute_consensus(block_type, config, [{}])
