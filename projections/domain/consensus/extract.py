"""The JSON walk: consensus value and voted leaves of any JSON output (extract, for_each)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

from .align import Aligner, align_by_content
from .limits import EXACT_ALIGNMENT_WORK, MAX_WALK_DEPTH
from .model import DocumentConsensus, VoteRow
from .normalize import ABSENT
from .settings import Settings
from .targets import build_targets, document_score
from .vote import vote_leaf

ROOT_LEAF_PATH = "$"


@dataclass(frozen=True, slots=True)
class Leaf:
    path: str
    row: VoteRow
    kept: bool
    """False when the row, field or an enclosing one is left out of the consensus value."""


@dataclass(frozen=True, slots=True)
class Walk:
    n: int
    settings: Settings
    aligners: Mapping[str, Aligner]
    """List path -> how its items are aligned (default: by content)."""
    exact: bool = True
    """Align lists exactly (small documents) or by the linear path."""

    def aligner(self, path: str) -> Aligner:
        return self.aligners.get(path, align_by_content)


def walk(votes: Sequence[Any], path: str, presence: float | None, ctx: Walk, depth: int = 1) -> tuple[Any, list[Leaf]]:
    """Consensus of `votes` (one per pass, ABSENT where a pass said nothing) at `path`.

    Containers deeper than MAX_WALK_DEPTH are leaves (voted by identical JSON), so the
    recursion is bounded whatever the input.
    """
    shape = _shape(votes)
    if shape is dict and depth <= MAX_WALK_DEPTH:
        return _walk_object(votes, path, presence, ctx, depth)
    if shape is list and depth <= MAX_WALK_DEPTH:
        return _walk_list(votes, path, presence, ctx, depth)
    return _walk_leaf(votes, path, presence, ctx)


def _shape(votes: Sequence[Any]) -> type | None:
    """The most common shape of the present votes; on a tie object beats list beats
    scalar (never pass order)."""
    objects = lists = scalars = 0
    for v in votes:
        if v is ABSENT:
            continue
        if isinstance(v, dict):
            objects += 1
        elif isinstance(v, list):
            lists += 1
        else:
            scalars += 1
    if objects >= lists and objects >= scalars:
        return dict
    return list if lists >= scalars else None


def _walk_object(votes, path, presence, ctx: Walk, depth: int) -> tuple[Any, list[Leaf]]:
    objects = [v if isinstance(v, dict) else ABSENT for v in votes]
    keys = list(dict.fromkeys(k for o in objects if o is not ABSENT for k in o))
    if not keys:
        return _walk_leaf(votes, path, presence, ctx)
    containers = sum(o is not ABSENT for o in objects)
    value, leaves = {}, []
    for key in keys:
        child = [o.get(key, ABSENT) if o is not ABSENT else ABSENT for o in objects]
        kept, child_value, child_leaves = _walk_child(child, _join(path, key), presence, containers, ctx, depth)
        if kept:
            value[key] = child_value
        leaves.extend(child_leaves)
    return value, leaves


def _walk_list(votes, path, presence, ctx: Walk, depth: int) -> tuple[Any, list[Leaf]]:
    lists = [v if isinstance(v, list) else None for v in votes]
    if not any(lists):
        return _walk_leaf(votes, path, presence, ctx)
    containers = sum(items is not None for items in lists)
    value, leaves = [], []
    for row in ctx.aligner(path)(lists, ctx.settings.numeric_tolerance, ctx.exact):
        row_votes = [lists[p][row[p]] if p in row else ABSENT for p in range(ctx.n)]
        row_presence = len(row) / ctx.n
        kept, item, item_leaves = _walk_child(row_votes, _join(path, "*"), row_presence, containers, ctx, depth)
        if kept:
            value.append(item)
        leaves.extend(item_leaves)
    return value, leaves


def _walk_child(votes, path, presence, containers: int, ctx: Walk, depth: int) -> tuple[bool, Any, list[Leaf]]:
    """A field or row is kept when more than half of the passes holding its container have it.

    When it is not kept, the consensus is that it is absent: every leaf below gets
    consensus None and the likelihood of absence (containers without it / voters).
    """
    value, leaves = walk(votes, path, presence, ctx, depth + 1)
    present = len(votes) - votes.count(ABSENT)
    if 2 * present > containers:
        return True, value, leaves
    absence = (containers - present) / ctx.n
    return False, None, [_dropped(leaf, absence) for leaf in leaves]


def _dropped(leaf: Leaf, score: float) -> Leaf:
    return Leaf(leaf.path, replace(leaf.row, consensus=None, score=score), kept=False)


def _walk_leaf(votes, path, presence, ctx: Walk) -> tuple[Any, list[Leaf]]:
    settings = ctx.settings
    ballot = vote_leaf(votes, settings.numeric_tolerance, settings.long_text_threshold)
    consensus = None if ballot.winner is None else votes[ballot.winner]
    row = VoteRow(
        consensus=consensus,
        votes=tuple(None if v is ABSENT else v for v in votes),
        score=ballot.support / ctx.n,
        row_presence_score=presence,
        present_voter_count=ballot.present,
        total_voter_count=ctx.n,
    )
    return consensus, [Leaf(path or ROOT_LEAF_PATH, row, kept=True)]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else str(key)


def extract_document(
    votes: Sequence[Any], settings: Settings, aligners: Mapping[str, Aligner] | None = None
) -> DocumentConsensus:
    """Consensus of extract outputs (also the engine of for_each)."""
    n = len(votes)
    exact = sum(alignment_work(v) for v in votes if v is not None) <= EXACT_ALIGNMENT_WORK
    ctx = Walk(n=n, settings=settings, aligners=aligners or {}, exact=exact)
    value, leaves = walk([ABSENT if v is None else v for v in votes], "", None, ctx)
    targets = build_targets(leaves)
    responding = sum(v is not None for v in votes)
    return DocumentConsensus(score=document_score(targets, responding, n), value=value, targets=targets)


def alignment_work(output: Any) -> int:
    """Sum over the output's lists (within MAX_WALK_DEPTH) of items x values inside: what
    exact alignment would cost, up to a constant. Iterative: safe at any depth."""
    work = 0
    stack: list[tuple[Any, int, int]] = [(output, 0, 1)]
    while stack:
        node, enclosing, depth = stack.pop()
        work += enclosing
        if depth > MAX_WALK_DEPTH:
            continue
        if isinstance(node, dict):
            children, inner = node.values(), enclosing
        elif isinstance(node, list):
            children, inner = node, enclosing + len(node)
        else:
            continue
        for child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, inner, depth + 1))
            else:
                work += inner
    return work
