"""How a runs-list poll turns the rows a page shows into the rows it should show
(services/console/live.row_changes): only what changed is drawn, and the order comes out right."""
from __future__ import annotations

from hypothesis import given, strategies as st

from services.console.live import parse_shown, row_changes, shown_text


def apply(shown: list[str], changes) -> list[str]:
    """What the browser does with the answer's out-of-band swaps."""
    rows = [key for key in shown if key not in changes.deleted]
    for key, after in changes.drawn:
        if after == "":
            continue  # replaced where it stands
        rows.insert(0 if after is None else rows.index(after) + 1, key)
    return rows


def test_a_changed_row_is_replaced_and_a_new_one_inserted_at_the_top():
    changes = row_changes([("a", 1), ("b", 1)], [("n", 1), ("a", 2), ("b", 1)])
    assert changes.deleted == [] and changes.drawn == [("n", None), ("a", "")]


def test_rows_that_left_the_page_are_deleted_and_nothing_else_is_drawn():
    changes = row_changes([("a", 1), ("b", 1), ("c", 1)], [("a", 1), ("c", 1)])
    assert changes.deleted == ["b"] and changes.drawn == []


@given(st.lists(st.sampled_from("abcdefgh"), unique=True), st.lists(st.sampled_from("abcdefgh"), unique=True),
       st.data())
def test_any_change_of_a_page_comes_out_as_the_new_page(before, after, data):
    versions = {key: data.draw(st.integers(0, 2)) for key in set(before) | set(after)}
    moved = {key: versions[key] + data.draw(st.integers(0, 1)) for key in after}
    changes = row_changes([(k, versions[k]) for k in before], [(k, moved[k]) for k in after])
    assert apply(before, changes) == after
    redrawn = {key for key, _ in changes.drawn}
    assert {k for k in after if k in before and moved[k] != versions[k]} <= redrawn  # every changed row
    assert len(changes.drawn) <= len(after)


def test_the_shown_parameter_round_trips():
    rows = [("AbC-_1", 3), ("x", 0)]
    assert parse_shown(shown_text(rows)) == rows and parse_shown("junk,,.5,k.x") == []
