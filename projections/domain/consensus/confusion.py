"""Label confusion: per document from voted questions, per run by merging documents."""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Hashable, Iterable, Sequence

from .model import Confusion, Flow
from .normalize import ABSENT, label_text


@dataclass(slots=True)
class Tally:
    """Counts votes per consensus label: agreeing, and flowing to each dissenting label.

    Only votes actually cast count here (a failed pass is no label), so for each
    consensus label diag + its flows sum to 1.
    """

    agree: Counter = field(default_factory=Counter)
    total: Counter = field(default_factory=Counter)
    flows: Counter = field(default_factory=Counter)

    def add(self, labels: Sequence[Any], keys: Sequence[Hashable], winner: int) -> None:
        source, winning_key = label_text(labels[winner]), keys[winner]
        shown: dict[Hashable, str] = {}
        for label, key in zip(labels, keys):
            if key is not ABSENT:
                shown.setdefault(key, label_text(label))
        for key in keys:
            if key is ABSENT:
                continue
            self.total[source] += 1
            if key == winning_key:
                self.agree[source] += 1
            else:
                self.flows[(source, shown[key])] += 1

    def confusion(self) -> Confusion:
        diag = {label: self.agree[label] / self.total[label] for label in sorted(self.total)}
        flows = tuple(
            Flow(source, target, count / self.total[source])
            for (source, target), count in sorted(self.flows.items())
        )
        return Confusion(diag=diag, flows=flows, vote_counts=dict(sorted(self.total.items())))


def merge_confusions(items: Iterable[Confusion]) -> Confusion:
    """Vote-weighted merge: each document weighs by the votes behind each label.

    diag[label] = sum(diag_d[label] * votes_d[label]) / sum(votes_d[label]); a flow's
    share is taken over all votes on that source label, not only documents that had the
    flow. Confusions without `vote_counts` weigh one vote per label.
    """
    weight: Counter = Counter()
    diag_parts: dict[str, list[float]] = defaultdict(list)
    flow_parts: dict[tuple[str, str], list[float]] = defaultdict(list)
    for item in items:
        for label, share in item.diag.items():
            w = item.vote_counts.get(label, 1)
            weight[label] += w
            diag_parts[label].append(share * w)
        for flow in item.flows:
            flow_parts[(flow.source, flow.target)].append(flow.score * item.vote_counts.get(flow.source, 1))
    labels = sorted(label for label in weight if weight[label] > 0)
    diag = {label: math.fsum(diag_parts[label]) / weight[label] for label in labels}
    flows = tuple(
        Flow(source, target, math.fsum(parts) / weight[source])
        for (source, target), parts in sorted(flow_parts.items())
        if weight[source] > 0
    )
    return Confusion(diag=diag, flows=flows, vote_counts={label: weight[label] for label in labels})
