"""`item_similarity` of every item with every row prototype, computed a field at a time.

The Hungarian matrix of an alignment compares each unmatched item with each free row;
pair by pair that is most of the engine's time on an ordinary invoice. Here each field
is compared for all pairs at once: texts through rapidfuzz's `process.cdist` (the same
Indel computation, one call), numbers through numpy (the same IEEE operations as
`number_similarity`, for numbers where float64 arithmetic is exact: see `_plain_number`),
and anything else pair by pair through `item_similarity` itself. Each object's fields are
then summed with `math.fsum` (exactly rounded, so the order of fields cannot matter):
every value equals `item_similarity`'s to the digit (tests/unit/test_consensus_shortcuts.py).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Indel

from .similarity import compared_text, item_similarity

BATCH_CELLS = 16
"""Below this many pairs the per-call cost of numpy and cdist exceeds the work: pair by pair."""

_EXACT_INT = 2**52
"""Integers below this in magnitude, and their differences, are exact in float64."""
_HUGE = 2.0**1000
"""number_similarity's bound for plain float arithmetic (normalize._HUGE)."""

Matrix = list[list[float]]


def similarity_matrix(rows: Sequence[Any], cols: Sequence[Any], tolerance: float) -> Matrix:
    """`[[item_similarity(r, c, tolerance) for c in cols] for r in rows]`, to the digit."""
    if len(rows) * len(cols) < BATCH_CELLS:
        return [[item_similarity(r, c, tolerance) for c in cols] for r in rows]
    if all(type(v) is dict for v in rows) and all(type(v) is dict for v in cols):
        return _object_matrix(rows, cols, tolerance)
    return _value_matrix(rows, cols, tolerance, 0)


def _object_matrix(rows: Sequence[dict], cols: Sequence[dict], tolerance: float) -> Matrix:
    """`_object_similarity` for every pair: per pair, the exactly rounded sum over shared
    keys of the field's similarity, over the number of keys either side has. A key only
    one side has adds an exact 0.0, which leaves an exactly rounded sum unchanged."""
    keys = list(dict.fromkeys(k for v in (*rows, *cols) for k in v))
    layers = [_field_layer(rows, cols, key, tolerance) for key in keys]
    sizes = _union_sizes(rows, cols, len(keys))
    zeros = [0.0] * len(cols)
    out = []
    for i in range(len(rows)):
        sums = map(math.fsum, zip(*(layer[i] for layer in layers))) if layers else zeros
        out.append([total / size if size else 1.0 for total, size in zip(sums, sizes[i])])
    return out


def _field_layer(rows: Sequence[dict], cols: Sequence[dict], key: Any, tolerance: float) -> Matrix:
    """One field's similarity for every pair (depth 1, as `_object_similarity` asks), 0.0
    where either side lacks the field."""
    r = [i for i, v in enumerate(rows) if key in v]
    c = [j for j, v in enumerate(cols) if key in v]
    if not r or not c:
        return [[0.0] * len(cols) for _ in rows]
    sub = _value_matrix([rows[i][key] for i in r], [cols[j][key] for j in c], tolerance, 1)
    if len(r) == len(rows) and len(c) == len(cols):
        return sub
    full = [[0.0] * len(cols) for _ in rows]
    for i, line in zip(r, sub):
        target = full[i]
        for j, value in zip(c, line):
            target[j] = value
    return full


def _union_sizes(rows: Sequence[dict], cols: Sequence[dict], all_keys: int) -> list[list[int]]:
    first = rows[0].keys()
    if all(v.keys() == first for v in rows) and all(v.keys() == first for v in cols):
        return [[all_keys] * len(cols) for _ in rows]
    return [[len(a.keys() | b.keys()) for b in cols] for a in rows]


def _value_matrix(xs: Sequence[Any], ys: Sequence[Any], tolerance: float, depth: int) -> Matrix:
    """item_similarity(x, y, tolerance, depth) for every pair: texts and plain numbers in
    bulk, every other pair (mixed kinds, null, booleans, containers) one by one."""
    kinds = set(map(type, xs)) | set(map(type, ys))
    if kinds == {str}:
        return _text_matrix(xs, ys)
    if kinds <= {int, float} and all(map(_plain_number, xs)) and all(map(_plain_number, ys)):
        return _number_matrix(xs, ys, tolerance)
    text_x, text_y = _indexes(xs, _is_text), _indexes(ys, _is_text)
    number_x, number_y = _indexes(xs, _plain_number), _indexes(ys, _plain_number)
    out: list[list[Any]] = [[None] * len(ys) for _ in xs]
    if text_x and text_y:
        _place(out, text_x, text_y, _text_matrix([xs[i] for i in text_x], [ys[j] for j in text_y]))
    if number_x and number_y:
        block = _number_matrix([xs[i] for i in number_x], [ys[j] for j in number_y], tolerance)
        _place(out, number_x, number_y, block)
    for x, line in zip(xs, out):
        for j, value in enumerate(line):
            if value is None:
                line[j] = item_similarity(x, ys[j], tolerance, depth)
    return out


def _indexes(values: Sequence[Any], kind) -> list[int]:
    return [i for i, v in enumerate(values) if kind(v)]


def _place(out: list[list[Any]], rows: list[int], cols: list[int], block: Matrix) -> None:
    for i, line in zip(rows, block):
        target = out[i]
        for j, value in zip(cols, line):
            target[j] = value


def _is_text(value: Any) -> bool:
    """Exactly `str`: item_similarity grades only those as text."""
    return type(value) is str


def _plain_number(value: Any) -> bool:
    """An int or float (exact types, as item_similarity asks) whose number_similarity
    float64 arithmetic reproduces exactly: finite floats below 2**1000 (beyond it the
    engine compares exact fractions) and integers below 2**52 (so that they, their
    differences and their quotients round as Python's integer arithmetic does)."""
    kind = type(value)
    if kind is float:
        return math.isfinite(value) and abs(value) < _HUGE
    return kind is int and -_EXACT_INT < value < _EXACT_INT


def _text_matrix(xs: Sequence[str], ys: Sequence[str]) -> Matrix:
    """text_similarity for every pair: one cdist over the compared (normalized) texts."""
    scores = process.cdist([compared_text(x) for x in xs], [compared_text(y) for y in ys],
                           scorer=Indel.normalized_similarity, dtype=np.float64, workers=1)
    return scores.tolist()


def _number_matrix(xs: Sequence[float], ys: Sequence[float], tolerance: float) -> Matrix:
    """number_similarity for every pair, operation for operation: within tolerance of the
    larger magnitude (equal numbers always are, tolerance being >= 0) -> 1, else
    1 - min(1, gap / scale)."""
    a, b = np.array(xs, dtype=np.float64), np.array(ys, dtype=np.float64)
    gap = np.abs(np.subtract.outer(a, b))
    scale = np.maximum.outer(np.abs(a), np.abs(b))
    with np.errstate(divide="ignore", invalid="ignore"):  # scale 0 only where a == b == 0
        graded = 1.0 - np.minimum(1.0, gap / scale)
    agree = gap <= tolerance * scale
    if tolerance < 0:  # never from a block config (settings.py), kept exact for any caller
        agree |= np.equal.outer(a, b)
    return np.where(agree, 1.0, graded).tolist()
