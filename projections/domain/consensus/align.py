"""Which list items across passes are the same row, by content.

Two paths, chosen per document (see `limits.EXACT_ALIGNMENT_WORK`): the exact one
(Hungarian assignment over every unmatched item and row, cost quadratic in list length,
engine version 1's rows) and the linear one (each unmatched item compared with the
BAND_CANDIDATES rows nearest its expected position, then greedy by similarity).

Everything here depends only on the *contents* of the passes, never on their indexes,
so permuting passes yields the same rows (that is what keeps scores permutation-invariant).
"""
from __future__ import annotations

import bisect
import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .assignment import linear_sum_assignment
from .batch import similarity_matrix
from .limits import BAND_CANDIDATES, FIELD_CANDIDATES
from .normalize import canonical
from .settings import MATCH_THRESHOLD
from .similarity import is_flat, item_similarity

Row = dict[int, int]
"""pass index -> index of that pass's item in the row."""
Aligner = Callable[[Sequence["list | None"], float, bool], list[Row]]
"""(lists, numeric tolerance, exact) -> rows; `exact` False asks for the linear path."""

_POSITION_EPSILON = 1e-9


@dataclass(slots=True)
class _Slot:
    prototype: Any
    anchor: float
    """Position of the row, used only to break near-ties between equally similar rows."""
    members: Row = field(default_factory=dict)
    forms: set[str] = field(default_factory=set)
    """Canonical JSON of the prototype and of every member so far."""


def align_by_content(lists: Sequence[list | None], tolerance: float, exact: bool = True) -> list[Row]:
    """Rows in output order; `lists[p]` is None where pass p has no list here.

    Round 1 seeds rows from the reference pass (most items, then smallest canonical
    JSON) and assigns every other pass to them; round 2 reassigns every pass to the
    medoid item of each round-1 row, so an odd reference item cannot skew the rows.
    """
    forms = {p: canonical(items) for p, items in enumerate(lists) if items is not None}
    if len(set(forms.values())) == 1:
        return identity_rows(lists, forms)
    return two_rounds(lists, forms, tolerance, exact)


def two_rounds(lists: Sequence[list | None], forms: dict[int, str], tolerance: float, exact: bool) -> list[Row]:
    """align_by_content's general path; `forms[p]` is the canonical JSON of `lists[p]`."""
    order = sorted(forms, key=lambda p: (-len(lists[p]), forms[p]))
    similarity = _Similarity(tolerance)
    match = _match if exact else _match_banded
    first = _assign(lists, order, [], similarity, match)
    seeds = [_Slot(_medoid(lists, s.members, similarity), mean_position(s.members)) for s in first]
    final = [s.members for s in _assign(lists, order, seeds, similarity, match) if s.members]
    return ordered(final, list(range(len(final))))


def ordered(rows: list[Row], tiebreaks: list) -> list[Row]:
    """Rows by the median position of their items (one pass moving an item does not move
    the row), then the mean position, then `tiebreaks` (content-derived)."""
    keyed = sorted(zip(rows, tiebreaks), key=lambda pair: (*_positions(pair[0]), pair[1]))
    return [row for row, _ in keyed]


def mean_position(row: Row) -> float:
    return math.fsum(row.values()) / len(row)


def _positions(row: Row) -> tuple[float, float]:
    return statistics.median(row.values()), mean_position(row)


def identity_rows(lists: Sequence[list | None], forms: dict[int, str]) -> list[Row]:
    """Every present list written identically (the common case): item i of each pass is
    row i. This is what the two rounds give for such lists (each item joins the first
    free row holding its form: its own index), only without comparing anything."""
    present = sorted(forms)
    return [{p: i for p in present} for i in range(len(lists[present[0]]))]


class _Similarity:
    """item_similarity and canonical JSON, remembered per item object for one alignment.

    Identical items are similar 1.0 without looking further.
    """

    def __init__(self, tolerance: float) -> None:
        self.tolerance = tolerance
        self.known: dict[tuple[int, int], float] = {}
        self.texts: dict[int, str] = {}

    def __call__(self, a: Any, b: Any) -> float:
        key = (id(a), id(b))
        if key not in self.known:
            same = self.canonical(a) == self.canonical(b)
            self.known[key] = 1.0 if same else item_similarity(a, b, self.tolerance)
        return self.known[key]

    def matrix(self, items: Sequence[Any], prototypes: Sequence[Any]) -> list[list[float]]:
        """`self(item, prototype)` for every pair, computed in bulk (batch.py). Pairs
        similar enough to share a row are remembered for the medoids."""
        sims = similarity_matrix(items, prototypes, self.tolerance)
        columns: dict[str, list[int]] = {}
        for j, prototype in enumerate(prototypes):
            columns.setdefault(self.canonical(prototype), []).append(j)
        for item, line in zip(items, sims):
            for j in columns.get(self.canonical(item), ()):
                line[j] = 1.0
            for j, sim in enumerate(line):
                if sim >= MATCH_THRESHOLD:
                    self.known[(id(item), id(prototypes[j]))] = sim
        return sims

    def canonical(self, item: Any) -> str:
        if id(item) not in self.texts:
            self.texts[id(item)] = canonical(item)
        return self.texts[id(item)]


def _assign(lists, order: list[int], seeds: list[_Slot], similarity: _Similarity, match) -> list[_Slot]:
    slots = [_Slot(s.prototype, s.anchor, {}, {similarity.canonical(s.prototype)}) for s in seeds]
    for p in order:
        items = lists[p]
        matched = match(items, slots, similarity)
        for i, item in enumerate(items):
            if i in matched:
                slot = slots[matched[i]]
                slot.members[p] = i
                slot.forms.add(similarity.canonical(item))
            else:
                slots.append(_Slot(item, float(i), {p: i}, {similarity.canonical(item)}))
    return slots


def _match(items: list, slots: list[_Slot], similarity: _Similarity) -> dict[int, int]:
    """item -> slot: an item identical to one already in a row joins it; the rest get the
    best one-to-one assignment on similarity (near-ties go to the nearer position)."""
    matched = _match_identical(items, slots, similarity)
    taken = set(matched.values())
    rest_items = [i for i in range(len(items)) if i not in matched]
    rest_slots = [j for j in range(len(slots)) if j not in taken]
    if not rest_items or not rest_slots:
        return matched
    sims = similarity.matrix([items[i] for i in rest_items], [slots[j].prototype for j in rest_slots])
    positions = np.array(rest_items, dtype=np.float64)[:, None]
    anchors = np.array([slots[j].anchor for j in rest_slots], dtype=np.float64)[None, :]
    cost = _POSITION_EPSILON * np.abs(positions - anchors) - np.array(sims, dtype=np.float64)
    for r, c in zip(*linear_sum_assignment(cost)):
        if sims[r][c] >= MATCH_THRESHOLD:
            matched[rest_items[r]] = rest_slots[c]
    return matched


def _match_banded(items: list, slots: list[_Slot], similarity: _Similarity) -> dict[int, int]:
    """The linear path: identical items first; every other item is compared with the
    BAND_CANDIDATES free rows nearest its expected position (its identical neighbours'
    rows, shifted by its distance to them), and pairs are taken greedily, most similar
    first (then nearest, then lowest indexes). O(items x BAND_CANDIDATES) similarities."""
    matched = _match_identical(items, slots, similarity)
    taken = set(matched.values())
    free = sorted((slots[j].anchor, j) for j in range(len(slots)) if j not in taken)
    anchors = [anchor for anchor, _ in free]
    expected = _expected_positions(len(items), matched, slots)
    by_field = _FieldIndex(free, slots)
    pairs = []
    for i in range(len(items)):
        if i in matched:
            continue
        near = _nearest(anchors, free, expected[i])
        for distance, j in near + by_field.candidates(items[i], expected[i], {j for _, j in near}):
            sim = similarity(items[i], slots[j].prototype)
            if sim >= MATCH_THRESHOLD:
                pairs.append((-sim, distance, i, j))
    pairs.sort()
    for _, _, i, j in pairs:
        if i not in matched and j not in taken:
            matched[i] = j
            taken.add(j)
    return matched


class _FieldIndex:
    """Free rows by each scalar field of their (object) prototype, so an item that moved
    far and changed a field is still compared with the row it shares an identifying
    field with (a value only that free row holds: its sku, its description; a common
    value such as a quantity of 1 identifies nothing): at most FIELD_CANDIDATES more rows
    per item."""

    def __init__(self, free: list[tuple[float, int]], slots: list[_Slot]) -> None:
        self.rows: dict[tuple[str, str], list[tuple[float, int]]] = {}
        for anchor, j in free:  # in anchor order, so each list is sorted
            prototype = slots[j].prototype
            if isinstance(prototype, dict):
                for key, value in prototype.items():
                    if not isinstance(value, (dict, list)):
                        self.rows.setdefault((key, canonical(value)), []).append((anchor, j))

    def candidates(self, item: Any, position: float, seen: set[int]) -> list[tuple[float, int]]:
        found: list[tuple[float, int]] = []
        if not isinstance(item, dict):
            return found
        for key, value in item.items():
            if len(found) >= FIELD_CANDIDATES:
                break
            if isinstance(value, (dict, list)):
                continue
            rows = self.rows.get((key, canonical(value)))
            if rows and len(rows) == 1 and rows[0][1] not in seen:
                anchor, j = rows[0]
                seen.add(j)
                found.append((abs(anchor - position), j))
        return found


def _expected_positions(count: int, matched: dict[int, int], slots: list[_Slot]) -> list[float]:
    """Where each item's row should sit: the anchor of the nearest identical item before
    it plus the distance to it (else the one after it, else its own index)."""
    expected = [float(i) for i in range(count)]
    after: float | None = None
    for i in range(count - 1, -1, -1):
        if i in matched:
            after = slots[matched[i]].anchor - i
        elif after is not None:
            expected[i] = after + i
    before: float | None = None
    for i in range(count):
        if i in matched:
            before = slots[matched[i]].anchor - i
        elif before is not None:
            expected[i] = before + i
    return expected


def _nearest(anchors: list[float], free: list[tuple[float, int]], position: float) -> list[tuple[float, int]]:
    """The BAND_CANDIDATES free rows nearest `position`: (distance, row index)."""
    right = bisect.bisect_left(anchors, position)
    left = right - 1
    found: list[tuple[float, int]] = []
    while len(found) < BAND_CANDIDATES and (left >= 0 or right < len(free)):
        take_left = right >= len(free) or (left >= 0 and position - anchors[left] <= anchors[right] - position)
        if take_left:
            found.append((position - anchors[left], free[left][1]))
            left -= 1
        else:
            found.append((anchors[right] - position, free[right][1]))
            right += 1
    return found


def _match_identical(items: list, slots: list[_Slot], similarity: _Similarity) -> dict[int, int]:
    """Each item joins the first free row (by index) holding an identical item: linear,
    each row is skipped at most once per form it holds."""
    free: dict[str, list[int]] = {}
    for j, slot in enumerate(slots):
        for form in slot.forms:
            free.setdefault(form, []).append(j)
    cursor: dict[str, int] = {}
    matched: dict[int, int] = {}
    taken: set[int] = set()
    for i, item in enumerate(items):
        form = similarity.canonical(item)
        rows, k = free.get(form, ()), cursor.get(form, 0)
        while k < len(rows) and rows[k] in taken:
            k += 1
        cursor[form] = k
        if k < len(rows):
            matched[i] = rows[k]
            taken.add(rows[k])
    return matched


def _medoid(lists, members: Row, similarity: _Similarity) -> Any:
    """The member most similar to all members (each distinct form weighed by its count);
    on a tie the smallest canonical JSON."""
    forms: dict[str, list] = {}
    for p, i in members.items():
        forms.setdefault(similarity.canonical(lists[p][i]), []).append(lists[p][i])
    distinct = [forms[form] for form in sorted(forms)]
    if len(distinct) == 1:
        return distinct[0][0]
    sims = _pairwise([same[0] for same in distinct], similarity)
    best, best_total = distinct[0][0], -1.0
    for (candidate, *_), line in zip(distinct, sims):
        total = math.fsum(sim * len(same) for sim, same in zip(line, distinct))
        if total > best_total:
            best, best_total = candidate, total
    return best


def _pairwise(items: list, similarity: _Similarity) -> list[list[float]]:
    """similarity(a, b) for every ordered pair; for two flat items (see `is_flat`) the
    measure is symmetric, so b with a is not measured again."""
    flat = [is_flat(item) for item in items]
    sims: list[list[float | None]] = [[None] * len(items) for _ in items]
    for a, item in enumerate(items):
        for b, other in enumerate(items):
            if sims[a][b] is None:
                sims[a][b] = similarity(item, other)
                if flat[a] and flat[b]:
                    sims[b][a] = sims[a][b]
    return sims
