"""How much two values agree, on [0, 1]: for leaf votes and for aligning list items."""
from __future__ import annotations

import math
from typing import Any

from rapidfuzz.distance import Indel
from scipy.optimize import linear_sum_assignment

from .normalize import canonical, is_number, normalize_text, number_similarity, numbers_close


def text_similarity(a: str, b: str) -> float:
    """Normalized Indel similarity (rapidfuzz `ratio` / 100) of the normalized texts."""
    return Indel.normalized_similarity(normalize_text(a), normalize_text(b))


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


def item_similarity(a: Any, b: Any, tolerance: float) -> float:
    """Graded likeness of two list items, used only to decide which items are the same row."""
    ta, tb = type(a), type(b)
    if ta is str and tb is str:
        return text_similarity(a, b)
    if ta in _NUMBERS and tb in _NUMBERS:
        return number_similarity(a, b, tolerance)
    if isinstance(a, dict) and isinstance(b, dict):
        return _object_similarity(a, b, tolerance)
    if isinstance(a, list) and isinstance(b, list):
        return _list_similarity(a, b, tolerance)
    if is_number(a) and is_number(b):
        return number_similarity(a, b, tolerance)
    return agreement(a, b, tolerance, long_text=False)


_NUMBERS = (int, float)


def _object_similarity(a: dict, b: dict, tolerance: float) -> float:
    """Mean over the union of keys; a key only one side has counts 0."""
    keys = a.keys() | b.keys()
    if not keys:
        return 1.0
    return math.fsum(item_similarity(a[k], b[k], tolerance) for k in keys if k in a and k in b) / len(keys)


def _list_similarity(a: list, b: list, tolerance: float) -> float:
    if not a and not b:
        return 1.0
    if not a or not b:
        return 0.0
    matrix = [[item_similarity(x, y, tolerance) for y in b] for x in a]
    rows, cols = linear_sum_assignment(matrix, maximize=True)
    return math.fsum(matrix[r][c] for r, c in zip(rows, cols)) / max(len(a), len(b))
