"""The contract's fast bounds check (`_within`, the decode's hot path) agrees with the
walk that names the problem (`_walk`) on every value: a value passes one iff it passes
the other, keys already seen good included."""
from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from events import bounds

NASTY_TEXT = st.text(st.sampled_from(["a", "é", "\x00", "\x1f", "\ud800", "🙂", ".", "*"]), max_size=6)
SCALARS = st.one_of(
    st.none(), st.booleans(), NASTY_TEXT,
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True),
)
KEYS = st.one_of(NASTY_TEXT, st.text(min_size=250, max_size=260, alphabet="k"))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)), max_leaves=30)


def deep(depth: int):
    value = 1
    for _ in range(depth - 1):
        value = {"k": [value]} if depth % 2 else [value]
    return value


@settings(max_examples=400, deadline=None)
@given(VALUES)
@example(deep(bounds.MAX_JSON_DEPTH))
@example(deep(bounds.MAX_JSON_DEPTH + 1))
@example([0] * (bounds.MAX_JSON_LIST_LENGTH + 1))
@example({"k" * 200: {"k" * 200: {"k" * 200: {"k" * 200: 1}}}})  # a path over 768 bytes
@example({"a": 2**63 - 1, "b": -(2**63 - 1)})
@example({"a": 2**63})
@example({1: "not a string key"})
@example(["x" * 300_000, "y" * 300_000])  # text beyond the encoded size
def test_the_fast_check_and_the_walk_agree(value):
    assert bounds._within(value) == (bounds._walk(value) is None)
    assert bounds._within(value) == (bounds._walk(value) is None)  # again, with keys now cached
