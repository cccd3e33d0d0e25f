"""for_each: `{"items": [...]}` scored as extract, items matched by their key field."""
from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

from .align import Aligner, Row, align_by_content, ordered
from .extract import extract_document
from .model import DocumentConsensus
from .normalize import label_key
from .settings import Settings

ITEMS_PATH = "items"


def for_each_document(votes: Sequence[Any], settings: Settings) -> DocumentConsensus:
    """Without `key_field` in the config, items are aligned by content like any list."""
    aligners = {ITEMS_PATH: keyed_aligner(settings.key_field)} if settings.key_field else {}
    return extract_document(votes, settings, aligners)


def keyed_aligner(key_field: str) -> Aligner:
    def align(lists: Sequence[list | None], tolerance: float, exact: bool) -> list[Row]:
        return align_by_key(lists, key_field, tolerance, exact)

    return align


def align_by_key(lists: Sequence[list | None], key_field: str, tolerance: float, exact: bool = True) -> list[Row]:
    """Items with the same normalized key are one row (the k-th repeat of a key within
    a pass goes to the k-th row of that key); items without a usable key are aligned by
    content among themselves."""
    keyed: dict[tuple, Row] = {}
    loose: list[list[int] | None] = []
    for p, items in enumerate(lists):
        loose.append(None if items is None else [])
        seen: Counter = Counter()
        for i, item in enumerate(items or ()):
            key = _item_key(item, key_field)
            if key is None:
                loose[p].append(i)
                continue
            seen[key] += 1
            keyed.setdefault((key, seen[key]), {})[p] = i
    rest = _align_loose(lists, loose, tolerance, exact)
    tiebreaks = [(0, key, k) for key, k in keyed] + [(1, ("", ""), j) for j in range(len(rest))]
    return ordered(list(keyed.values()) + rest, tiebreaks)


def _align_loose(lists, loose: list[list[int] | None], tolerance: float, exact: bool) -> list[Row]:
    subsets = [None if idx is None else [lists[p][i] for i in idx] for p, idx in enumerate(loose)]
    rows = align_by_content(subsets, tolerance, exact)
    return [{p: loose[p][i] for p, i in row.items()} for row in rows]


def _item_key(item: Any, key_field: str) -> tuple[str, str] | None:
    if not isinstance(item, dict) or item.get(key_field) is None:
        return None
    key = label_key(item[key_field])
    return None if key == ("s", "") else key
