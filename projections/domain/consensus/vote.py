"""Voting at one leaf: which present vote wins and how much support it has."""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Hashable, Sequence

from rapidfuzz.distance import Indel

from .normalize import ABSENT, canonical, is_number, normalize_text, numbers_close
from .similarity import agreement, compared_text


@dataclass(frozen=True, slots=True)
class Ballot:
    winner: int | None
    """Pass index of the consensus vote (None when nobody voted)."""
    support: float
    """Sum over present votes of their agreement with the winner, its own vote included."""
    present: int


def vote_leaf(votes: Sequence[Any], tolerance: float, long_text_threshold: int) -> Ballot:
    """The vote with the most support wins; on equal support the one written exactly
    like the most votes, then the lowest pass index."""
    present = [i for i, v in enumerate(votes) if v is not ABSENT]
    if present and _plainly_unanimous(votes, present):
        return Ballot(present[0], float(len(present)), len(present))
    forms = {i: canonical(votes[i]) for i in present}
    if _unanimous(votes, present, forms):
        return Ballot(present[0], float(len(present)), len(present))
    long_text = any(_is_long(votes[i], long_text_threshold) for i in present)
    counts = Counter(forms.values())
    support = _supports(votes, present, forms, tolerance, long_text)
    winner, best = None, (0.0, 0)
    for i in present:
        rank = (support[i], counts[forms[i]])
        if winner is None or rank > best:
            winner, best = i, rank
    return Ballot(winner, best[0], len(present))


_FORM_FOLLOWS_VALUE = (str, int, bool, type(None))
"""Types whose values, when equal (same type, ==), are written identically."""


def _plainly_unanimous(votes, present: list[int]) -> bool:
    """`_unanimous` without writing any form, where `==` decides it: every present vote
    of one type among str, int, bool, None, or nonzero finite floats (0.0 == -0.0, and
    NaN and the infinities are written null), and equal to the first. False means "look
    closer", never "not unanimous"."""
    first = votes[present[0]]
    kind = type(first)
    if kind is float:
        if first == 0.0 or not math.isfinite(first):
            return False
    elif kind not in _FORM_FOLLOWS_VALUE:
        return False
    return all(type(votes[i]) is kind and votes[i] == first for i in present)


def _unanimous(votes, present: list[int], forms: dict[int, str]) -> bool:
    """Every present vote written identically (the common case): each agrees fully with
    each, so every support is the number of votes and the first one wins. Not for `null`
    forms, which NaN and infinities share with null without agreeing with it."""
    if not present:
        return False
    first = forms[present[0]]
    kind = type(votes[present[0]])
    return (first != "null" or votes[present[0]] is None) and all(
        forms[i] == first and type(votes[i]) is kind for i in present)


def _supports(votes, present: list[int], forms: dict[int, str], tolerance: float, long_text: bool) -> dict[int, float]:
    """Each present vote's support: the sum of every present vote's agreement with it.

    Exact agreement (short text, booleans, null, containers) is an equivalence, so votes
    are counted by key in O(n). Numbers (closeness is not transitive) and long texts
    (graded) agree only within their own kind and are compared pairwise, each pair once
    (both measures are symmetric); anything else goes through `agreement`."""
    keys = {i: _agreement_key(votes[i], forms[i], long_text) for i in present}
    counts = Counter(k for k in keys.values() if k is not None)
    support = {i: float(counts[keys[i]]) for i in present if keys[i] is not None}
    pairwise = [i for i in present if keys[i] is None]
    numbers = [i for i in pairwise if is_number(votes[i])]
    texts = {i: compared_text(votes[i]) for i in pairwise if isinstance(votes[i], str)}
    others = [i for i in pairwise if i not in texts and not is_number(votes[i])]
    if numbers:
        support.update(_number_supports(votes, numbers, tolerance))
    if texts:
        support.update(_symmetric_sums(list(texts), texts.__getitem__,
                                       lambda i, j: Indel.normalized_similarity(texts[i], texts[j])))
    for i in others:
        support[i] = math.fsum(agreement(votes[i], votes[j], tolerance, long_text) for j in others)
    return support


def _symmetric_sums(members: list[int], key, measure) -> dict[int, float]:
    """For each member, the exact sum of `measure` with every member (itself included).

    Members with the same `key` measure alike against every member, so each pair of
    keys is measured once (each unordered pair: the measures are symmetric) and its
    grade counted once per member behind it: the same terms, so the same exact sums."""
    groups: dict[Hashable, list[int]] = {}
    for i in members:
        groups.setdefault(key(i), []).append(i)
    heads = [group[0] for group in groups.values()]
    sizes = {group[0]: len(group) for group in groups.values()}
    grades: dict[int, list[float]] = {head: [] for head in heads}
    for a, i in enumerate(heads):
        for j in heads[a:]:
            grade = measure(i, j)
            grades[i].extend([grade] * sizes[j])
            if j != i:
                grades[j].extend([grade] * sizes[i])
    sums = {head: math.fsum(values) for head, values in grades.items()}
    return {i: sums[group[0]] for group in groups.values() for i in group}


def _number_supports(votes, members: list[int], tolerance: float) -> dict[int, float]:
    """Each number's support: how many of `members` are close to it (itself included),
    as `_symmetric_sums` would sum their 1.0s: each pair of distinct values tested once."""
    groups: dict[Hashable, list[int]] = {}
    for i in members:
        groups.setdefault(_number_key(votes[i], i), []).append(i)
    heads = list(groups.values())
    counts = [0] * len(heads)
    for a, group in enumerate(heads):
        value = votes[group[0]]
        for b in range(a, len(heads)):
            if numbers_close(value, votes[heads[b][0]], tolerance):
                counts[a] += len(heads[b])
                if b != a:
                    counts[b] += len(group)
    return {i: float(count) for group, count in zip(heads, counts) for i in group}


def _number_key(value: Any, index: int) -> Hashable:
    """Equal numbers of one exact type are close to the same numbers (0.0 and -0.0 too);
    NaN, and subclasses of int or float, stand alone."""
    kind = type(value)
    if (kind is int or kind is float) and value == value:
        return (kind, value)
    return ("alone", index)


def _agreement_key(vote: Any, form: str, long_text: bool) -> Hashable | None:
    """What two votes must share to agree (1, else 0); None for votes compared pairwise."""
    if isinstance(vote, str):
        return None if long_text else ("s", normalize_text(vote))
    if isinstance(vote, bool):
        return ("b", vote)
    if vote is None:
        return ("null",)
    if isinstance(vote, (dict, list)):
        return ("c", form)
    return None


def vote_labels(keys: Sequence[Hashable], labels: Sequence[Any]) -> Ballot:
    """Plain majority over label keys (ABSENT = no vote); ties between keys go to the
    lowest pass index. The winner is the most common spelling (`labels`) of that key."""
    counts = Counter(k for k in keys if k is not ABSENT)
    if not counts:
        return Ballot(None, 0.0, 0)
    top = max(counts.values())
    winning_key = next(k for k in keys if k is not ABSENT and counts[k] == top)
    members = [i for i, k in enumerate(keys) if k == winning_key]
    spellings = Counter(canonical(labels[i]) for i in members)
    winner = max(members, key=lambda i: (spellings[canonical(labels[i])], -i))
    return Ballot(winner, float(top), sum(counts.values()))


def _is_long(value: Any, threshold: int) -> bool:
    return isinstance(value, str) and len(value) > threshold
