"""A run's metrics, kept current one finished document at a time.

Scores are summed as exact fractions (every float is one) and votes as counts, so
the totals do not depend on the order documents finish in, and a mean is the
correctly rounded mean: a replay gives the same numbers to the last digit. Sums are
stored as "numerator/denominator" strings.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Any, Mapping

EMPTY: Mapping[str, Any] = {"targets": {}, "labels": {}, "flows": {}}
LABEL_BLOCKS = ("classifier", "split")  # their questions are labels: a summary shows their confusion
_SEP = "\u2192"  # source→target key of a flow


def add_score(total: str, score: float) -> str:
    return _text(_fraction(total) + Fraction(score))


def _text(value: Fraction) -> str:
    text = str(value)
    _PARSED[text] = value
    if len(_PARSED) > 8192:
        _PARSED.clear()
    return text


_PARSED: dict[str, Fraction] = {}


def _fraction(text: str) -> Fraction:
    """`Fraction(text)`: the sum written last for a run is read back on its next finished
    document, so it is remembered rather than parsed again (a regular expression a time)."""
    found = _PARSED.get(text)
    return found if found is not None else Fraction(text)


def mean(total: str, count: int) -> float | None:
    return float(_fraction(total) / count) if count else None


def add_document(agg: Mapping[str, Any], consensus: Mapping[str, Any]) -> dict[str, Any]:
    targets = dict(agg["targets"])
    for target in consensus.get("targets", ()):
        total, count = targets.get(target["path"], ("0", 0))
        targets[target["path"]] = [add_score(total, target["score"]), count + 1]
    labels, flows = dict(agg["labels"]), dict(agg["flows"])
    confusion = consensus.get("confusion")
    if confusion:
        votes = confusion.get("vote_counts", {})
        for label, share in confusion["diag"].items():
            agree, total = labels.get(label, (0, 0))
            labels[label] = [agree + round(share * votes.get(label, 1)), total + votes.get(label, 1)]
        for flow in confusion["flows"]:
            key = f"{flow['source']}{_SEP}{flow['target']}"
            flows[key] = flows.get(key, 0) + round(flow["score"] * votes.get(flow["source"], 1))
    return {"targets": targets, "labels": labels, "flows": flows}


def likelihoods(agg: Mapping[str, Any]) -> dict[str, float]:
    return {path: mean(total, count) for path, (total, count) in sorted(agg["targets"].items()) if count}


def confusion(agg: Mapping[str, Any]) -> dict[str, Any]:
    labels = agg["labels"]
    diag = {label: agree / total for label, (agree, total) in sorted(labels.items()) if total}
    flows = []
    for key, votes in sorted(agg["flows"].items()):
        source, target = key.split(_SEP, 1)
        total = labels.get(source, (0, 0))[1]
        if total:
            flows.append({"source": source, "target": target, "score": votes / total})
    return {"diag": diag, "flows": flows}


def summary(block_type: str, agg: Mapping[str, Any]) -> dict[str, Any]:
    """What a metrics summary shows of a run's aggregate."""
    if block_type in LABEL_BLOCKS:
        return confusion(agg)
    return {"likelihoods": likelihoods(agg)}
