"""Voting at one leaf: which present vote wins and how much support it has."""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Hashable, Sequence

from .normalize import ABSENT, canonical
from .similarity import agreement


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
    long_text = any(_is_long(votes[i], long_text_threshold) for i in present)
    forms = Counter(canonical(votes[i]) for i in present)
    winner, best = None, (0.0, 0)
    for i in present:
        support = math.fsum(agreement(votes[i], votes[j], tolerance, long_text) for j in present)
        rank = (support, forms[canonical(votes[i])])
        if winner is None or rank > best:
            winner, best = i, rank
    return Ballot(winner, best[0], len(present))


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
