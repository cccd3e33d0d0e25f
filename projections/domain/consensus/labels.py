"""classifier and split: majority labels per question, plus their confusion."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Hashable, Sequence

from .confusion import Tally
from .model import DocumentConsensus, TargetConsensus, VoteRow
from .normalize import ABSENT, label_key, label_text
from .settings import Settings
from .targets import document_score
from .vote import vote_labels

CATEGORY_PATH = "category"
PAGES_PATH = "pages"


def classifier_document(votes: Sequence[Any], settings: Settings) -> DocumentConsensus:
    """Output `{"category": label}`; an output without a category votes for null."""
    n = len(votes)
    labels = [v.get("category") if isinstance(v, dict) else ABSENT for v in votes]
    keys = [ABSENT if label is ABSENT else label_key(label) for label in labels]
    ballot = vote_labels(keys, labels)
    consensus = None if ballot.winner is None else labels[ballot.winner]
    row = _row(consensus, labels, ballot.support / n, None, ballot.present, n)
    target = TargetConsensus(path=CATEGORY_PATH, score=row.score, value=consensus, rows=(row,))
    tally = Tally()
    if ballot.winner is not None:
        tally.add(labels, keys, ballot.winner)
    responding = sum(v is not None for v in votes)
    return DocumentConsensus(
        score=document_score((target,), responding, n),
        value={"category": consensus},
        targets=(target,),
        confusion=tally.confusion(),
    )


@dataclass(frozen=True, slots=True)
class PageVote:
    key: Hashable
    """(normalized name, k): the k-th subdocument of that name in the pass, by first page."""
    label: str
    """The name as shown, with `#k` appended from the second subdocument of a name on."""
    name: Any


def split_document(votes: Sequence[Any], settings: Settings) -> DocumentConsensus:
    """Each page is a target `pages.<n>`, voted like a list row of subdocument labels."""
    n = len(votes)
    assignments = [page_votes(v) if v is not None else None for v in votes]
    containers = sum(a is not None for a in assignments)
    pages = sorted({page for a in assignments if a is not None for page in a})
    tally, targets, groups = Tally(), [], {}
    for page in pages:
        cast = [a.get(page, ABSENT) if a is not None else ABSENT for a in assignments]
        target, winner = _page_target(page, cast, containers, n)
        targets.append(target)
        if winner is not None:
            tally.add([c if c is ABSENT else c.label for c in cast], _keys(cast), winner)
            groups.setdefault(cast[winner].key, {"name": cast[winner].name, "pages": []})["pages"].append(page)
    responding = sum(v is not None for v in votes)
    return DocumentConsensus(
        score=document_score(targets, responding, n),
        value={"splits": list(groups.values())},
        targets=tuple(targets),
        confusion=tally.confusion(),
    )


def _page_target(page: int, cast: list, containers: int, n: int) -> tuple[TargetConsensus, int | None]:
    """Like a list row: kept when more than half of the passes with splits assign the page."""
    ballot = vote_labels(_keys(cast), [c if c is ABSENT else c.name for c in cast])
    labels = [c if c is ABSENT else c.label for c in cast]
    presence = ballot.present / n
    if 2 * ballot.present > containers:
        winner, consensus, score = ballot.winner, labels[ballot.winner], ballot.support / n
    else:
        winner, consensus, score = None, None, (containers - ballot.present) / n
    row = _row(consensus, labels, score, presence, ballot.present, n)
    target = TargetConsensus(path=f"{PAGES_PATH}.{page}", score=score, value=consensus, rows=(row,))
    return target, winner


def page_votes(output: Any) -> dict[int, PageVote] | None:
    """page -> the subdocument this pass put it in; a page listed twice keeps the first."""
    splits = output.get("splits") if isinstance(output, dict) else None
    if not isinstance(splits, list):
        return None
    indexed = [(i, split, pages) for i, split in enumerate(splits) if (pages := _pages(split))]
    ranks = _occurrences(indexed)
    votes: dict[int, PageVote] = {}
    for i, split, pages in indexed:
        vote = _page_vote(split.get("name"), ranks[i])
        for page in pages:
            votes.setdefault(page, vote)
    return votes


def _occurrences(indexed: list) -> dict[int, int]:
    """k of each split: its rank among the pass's splits of the same name, by first page."""
    seen: Counter = Counter()
    ranks = {}
    for i, split, pages in sorted(indexed, key=lambda e: (min(e[2]), e[0])):
        key = label_key(split.get("name"))
        seen[key] += 1
        ranks[i] = seen[key]
    return ranks


def _page_vote(name: Any, k: int) -> PageVote:
    text = label_text(name)
    return PageVote((label_key(name), k), text if k == 1 else f"{text}#{k}", name)


def _pages(split: Any) -> list[int]:
    if not isinstance(split, dict) or not isinstance(split.get("pages"), list):
        return []
    return [p for p in split["pages"] if isinstance(p, int) and not isinstance(p, bool) and p >= 1]


def _keys(cast: list) -> list:
    return [c if c is ABSENT else c.key for c in cast]


def _row(consensus, labels, score: float, presence, present: int, n: int) -> VoteRow:
    votes = tuple(None if label is ABSENT else label for label in labels)
    return VoteRow(consensus, votes, score, presence, present, n)
