"""Text normalization: the same result on every path, and ASCII independent of Unicode tables."""
from __future__ import annotations

import random
import unicodedata

from events.bounds import MAX_JSON_DEPTH
from projections.domain.consensus import compute_consensus
from projections.domain.consensus.limits import MAX_WALK_DEPTH, TEXT_COMPARE_CHARS
from projections.domain.consensus.normalize import _normalize_unicode, normalize_text

ASCII_GAPS = set("\x7f !\"#%&'()*,-./:;?@[\\]_{}") | {chr(c) for c in range(0x20)}
"""ASCII punctuation, space and controls: the same categories in every Unicode version."""


def by_definition(text: str) -> str:
    """docs/metrics.md's rule, one character at a time (engine version 1's code)."""
    out, gap = [], False
    for ch in unicodedata.normalize("NFKD", text.casefold()):
        category = unicodedata.category(ch)
        if category == "Mn":
            continue
        if category[0] in "PZ" or category == "Cc":
            gap = True
            continue
        if gap and out:
            out.append(" ")
        gap = False
        out.append(ch)
    return "".join(out)


def test_every_code_point_normalizes_as_defined():
    """Every code point of the planes that hold characters (0-3, and tags and variation
    selectors in 14), each followed by a space, a letter, a period or a combining mark."""
    planes = [*range(0x32400), *range(0xE0000, 0xE01F0)]
    points = [chr(c) for c in planes if not 0xD800 <= c < 0xE000]
    rng = random.Random(11)
    for start in range(0, len(points), 4096):
        chunk = points[start:start + 4096]
        text = "".join(ch + rng.choice(" a.\u0301") for ch in chunk)
        assert _normalize_unicode(text) == by_definition(text)


def test_ascii_text_is_normalized_without_the_unicode_tables():
    gaps = {chr(c) for c in range(128) if by_definition("a" + chr(c) + "b") == "a b"}
    assert gaps == ASCII_GAPS
    rng = random.Random(3)
    for _ in range(5000):
        text = "".join(chr(rng.randrange(128)) for _ in range(rng.randrange(16)))
        assert normalize_text(text) == by_definition(text)


def test_long_and_short_texts_normalize_alike():
    text = "Zürich, Straße  " * 40
    assert normalize_text(text) == by_definition(text)
    assert normalize_text(text[:20]) == by_definition(text[:20])


def test_graded_similarity_looks_at_the_first_characters_only():
    head = "x" * TEXT_COMPARE_CHARS
    result = compute_consensus("extract", {}, [{"d": head + "a" * 500}, {"d": head + "b" * 900}])
    assert result.score == 1.0


def test_the_engine_walks_at_least_as_deep_as_the_contract_allows():
    assert MAX_WALK_DEPTH >= MAX_JSON_DEPTH
