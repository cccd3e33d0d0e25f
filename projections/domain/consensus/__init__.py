"""The consensus/metrics engine: agreement between the n passes of one document.

Pure: no I/O, no clock, nothing else from this repository. See docs/metrics.md for
the exact rules.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from .confusion import merge_confusions
from .extract import extract_document
from .for_each import for_each_document
from .labels import classifier_document, split_document
from .model import ENGINE_LIBRARIES, ENGINE_VERSION, Confusion, DocumentConsensus, Flow, TargetConsensus, VoteRow
from .settings import Settings, config_problem

__all__ = [
    "ENGINE_LIBRARIES",
    "ENGINE_VERSION",
    "Confusion",
    "DocumentConsensus",
    "Flow",
    "TargetConsensus",
    "VoteRow",
    "compute_consensus",
    "config_problem",
    "merge_confusions",
]

_ENGINES: dict[str, Callable[[Sequence[Any], Settings], DocumentConsensus]] = {
    "extract": extract_document,
    "classifier": classifier_document,
    "split": split_document,
    "for_each": for_each_document,
}


def compute_consensus(block_type: str, config: Mapping[str, Any] | None, votes: list[Any | None]) -> DocumentConsensus:
    """Consensus of one document; `votes[i]` is pass i's output, None when that pass failed.

    `len(votes)` is the number of voters (n_consensus): failed passes count against
    every likelihood. Raises ValueError on an unknown block type or an unusable config.
    """
    engine = _ENGINES.get(block_type)
    if engine is None:
        raise ValueError(f"unknown block type {block_type!r}")
    settings = Settings.from_config(config)
    if all(vote is None for vote in votes):
        return DocumentConsensus(score=None, value=None, targets=(), confusion=None)
    return engine(votes, settings)
