"""From voted leaves to targets, and from targets to the document score."""
from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

from .model import TargetConsensus

STAR = "*"


def build_targets(leaves: Iterable[Any]) -> tuple[TargetConsensus, ...]:
    """One target per path; rows kept in the consensus come first, in row order."""
    groups: dict[str, list] = {}
    for leaf in leaves:
        groups.setdefault(leaf.path, []).append(leaf)
    return tuple(_target(path, groups[path]) for path in sorted(groups, key=path_sort_key))


def document_score(targets: Sequence[TargetConsensus], responding: int, n: int) -> float | None:
    """Mean of the target likelihoods, each target counted once.

    With no target at all (a split where no pass assigned a page) the score is the
    share of passes that produced an output.
    """
    if responding == 0:
        return None
    if not targets:
        return responding / n
    return math.fsum(t.score for t in targets) / len(targets)


def path_sort_key(path: str) -> tuple:
    """Segment by segment, numbers numerically: pages.2 before pages.10."""
    return tuple((0, int(s), s) if s.isascii() and s.isdigit() else (1, 0, s) for s in path.split("."))


def _target(path: str, leaves: list) -> TargetConsensus:
    ordered = [leaf for leaf in leaves if leaf.kept] + [leaf for leaf in leaves if not leaf.kept]
    rows = tuple(leaf.row for leaf in ordered)
    score = math.fsum(row.score for row in rows) / len(rows)
    if STAR in path.split("."):
        value = [leaf.row.consensus for leaf in leaves if leaf.kept]
    else:
        value = rows[0].consensus
    return TargetConsensus(path=path, score=score, value=value, rows=rows)
