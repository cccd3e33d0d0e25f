"""How much two values agree, on [0, 1]: for leaf votes and for aligning list items."""
from __future__ import annotations

import math
from collections import Counter
from functools import lru_cache
from typing import Any

from rapidfuzz.distance import Indel

from .assignment import linear_sum_assignment
from .limits import CACHED_TEXT_CHARS, NESTED_EXACT_PAIRS, SIMILARITY_DEPTH, TEXT_COMPARE_CHARS
from .normalize import canonical, is_number, normalize_text, number_similarity, numbers_close


def text_similarity(a: str, b: str) -> float:
    """Normalized Indel similarity (rapidfuzz `ratio` / 100) of the normalized texts.

    Only the first TEXT_COMPARE_CHARS characters of each text are compared, so one
    comparison costs at most about 2,000 x 2,000 / 64 machine words.
    """
    return Indel.normalized_similarity(compared_text(a), compared_text(b))


def compared_text(text: str) -> str:
    """The part of `text` that graded similarity looks at, normalized."""
    if len(text) <= CACHED_TEXT_CHARS:
        return normalize_text(text)
    return _compared(text if len(text) <= TEXT_COMPARE_CHARS else text[:TEXT_COMPARE_CHARS])


@lru_cache(maxsize=4096)
def _compared(prefix: str) -> str:
    """Normalized prefixes, remembered (at most 4,096 x 2,000 characters)."""
    return normalize_text(prefix)


def agreement(a: Any, b: Any, tolerance: float, long_text: bool) -> float:
    """How much vote `b` supports consensus candidate `a` at one leaf."""
    if isinstance(a, str) and isinstance(b, str):
        if long_text:
            return text_similarity(a, b)
        return 1.0 if normalize_text(a) == normalize_text(b) else 0.0
    if is_number(a) and is_number(b):
        return 1.0 if numbers_close(a, b, tolerance) else 0.0
    if isinstance(a, bool) and isinstance(b, bool):
        return 1.0 if a == b else 0.0
    if a is None and b is None:
        return 1.0
    if isinstance(a, (dict, list)) and isinstance(b, (dict, list)):
        return 1.0 if canonical(a) == canonical(b) else 0.0
    return 0.0


def item_similarity(a: Any, b: Any, tolerance: float, depth: int = 0) -> float:
    """Graded likeness of two list items, used only to decide which items are the same row.

    Bounded: containers SIMILARITY_DEPTH levels down, and nested lists with more than
    NESTED_EXACT_PAIRS item pairs, are compared by identical JSON only.
    """
    ta, tb = type(a), type(b)
    if ta is str and tb is str:
        return text_similarity(a, b)
    if ta in _NUMBERS and tb in _NUMBERS:
        return number_similarity(a, b, tolerance)
    if depth >= SIMILARITY_DEPTH and isinstance(a, (dict, list)) and isinstance(b, (dict, list)):
        return 1.0 if canonical(a) == canonical(b) else 0.0
    if isinstance(a, dict) and isinstance(b, dict):
        return _object_similarity(a, b, tolerance, depth)
    if isinstance(a, list) and isinstance(b, list):
        return _list_similarity(a, b, tolerance, depth)
    if is_number(a) and is_number(b):
        return number_similarity(a, b, tolerance)
    return agreement(a, b, tolerance, long_text=False)


_NUMBERS = (int, float)


def is_flat(item: Any) -> bool:
    """A scalar, or an object of scalars: `item_similarity` of two flat items is symmetric
    to the digit (every measure under it is: Indel, number closeness and gap, equality,
    an exactly rounded sum over the shared keys). Lists are not flat: their assignment
    need not pick the same pairs both ways round."""
    if isinstance(item, dict):
        return not any(isinstance(value, (dict, list)) for value in item.values())
    return not isinstance(item, list)


def _object_similarity(a: dict, b: dict, tolerance: float, depth: int) -> float:
    """Mean over the union of keys; a key only one side has counts 0."""
    keys = len(a.keys() | b.keys())
    if not keys:
        return 1.0
    return math.fsum(item_similarity(a[k], b[k], tolerance, depth + 1) for k in a if k in b) / keys


def _list_similarity(a: list, b: list, tolerance: float, depth: int) -> float:
    if not a and not b:
        return 1.0
    if not a or not b:
        return 0.0
    if len(a) * len(b) > NESTED_EXACT_PAIRS:
        common = Counter(map(canonical, a)) & Counter(map(canonical, b))
        return sum(common.values()) / max(len(a), len(b))
    matrix = [[item_similarity(x, y, tolerance, depth + 1) for y in b] for x in a]
    rows, cols = linear_sum_assignment(matrix, maximize=True)
    return math.fsum(matrix[r][c] for r, c in zip(rows, cols)) / max(len(a), len(b))
