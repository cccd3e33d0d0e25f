"""Result types of the consensus engine; each one round-trips through plain JSON."""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

ENGINE_VERSION = 2
"""Bump whenever the same votes would get different numbers (rules, defaults, thresholds).
2: bounded cost (linear alignment of large documents, capped text and item comparisons)."""

ENGINE_LIBRARIES: dict[str, str] = {
    **{name: version(name) for name in ("rapidfuzz", "scipy", "numpy", "orjson")},
    "unicode": unicodedata.unidata_version,
}
"""What else the digits depend on: text similarity (rapidfuzz, pair by pair and in bulk),
assignment (scipy, numpy), number similarity in bulk (numpy's IEEE arithmetic), canonical
forms (orjson) and the Unicode tables of this Python (text normalization)."""


@dataclass(frozen=True, slots=True)
class VoteRow:
    """One voted value: a field, or one aligned list row of a field.

    `votes[i]` is what pass i said (None where it said nothing, and also for a JSON
    null: `present_voter_count` tells how many passes actually voted).
    """

    consensus: Any
    votes: tuple[Any, ...]
    score: float
    row_presence_score: float | None
    present_voter_count: int
    total_voter_count: int

    def to_json(self) -> dict[str, Any]:
        return {
            "consensus": self.consensus,
            "votes": list(self.votes),
            "score": self.score,
            "row_presence_score": self.row_presence_score,
            "present_voter_count": self.present_voter_count,
            "total_voter_count": self.total_voter_count,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> VoteRow:
        return cls(
            consensus=d["consensus"],
            votes=tuple(d["votes"]),
            score=d["score"],
            row_presence_score=d["row_presence_score"],
            present_voter_count=d["present_voter_count"],
            total_voter_count=d["total_voter_count"],
        )


@dataclass(frozen=True, slots=True)
class TargetConsensus:
    """One leaf target path; for `*` paths one row per aligned list item."""

    path: str
    score: float
    value: Any
    rows: tuple[VoteRow, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "score": self.score,
            "value": self.value,
            "rows": [row.to_json() for row in self.rows],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TargetConsensus:
        rows = tuple(VoteRow.from_json(row) for row in d["rows"])
        return cls(path=d["path"], score=d["score"], value=d["value"], rows=rows)


@dataclass(frozen=True, slots=True)
class Flow:
    """Share of the votes on `source`-consensus questions that said `target` instead."""

    source: str
    target: str
    score: float

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "score": self.score}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Flow:
        return cls(source=d["source"], target=d["target"], score=d["score"])


@dataclass(frozen=True, slots=True)
class Confusion:
    """Label agreement of a classifier or split document (or of a whole run).

    `vote_counts[label]` is the number of votes behind `diag[label]` and the flows out
    of `label`; it is the weight `merge_confusions` uses.
    """

    diag: dict[str, float]
    flows: tuple[Flow, ...]
    vote_counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "diag": dict(self.diag),
            "flows": [flow.to_json() for flow in self.flows],
            "vote_counts": dict(self.vote_counts),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Confusion:
        flows = tuple(Flow.from_json(flow) for flow in d["flows"])
        return cls(diag=dict(d["diag"]), flows=flows, vote_counts=dict(d.get("vote_counts", {})))


@dataclass(frozen=True, slots=True)
class DocumentConsensus:
    """The consensus of one document's passes: `score` is None when no pass produced output."""

    score: float | None
    value: Any
    targets: tuple[TargetConsensus, ...]
    confusion: Confusion | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "engine_version": ENGINE_VERSION,
            "engine_libraries": dict(ENGINE_LIBRARIES),
            "score": self.score,
            "value": self.value,
            "targets": [target.to_json() for target in self.targets],
            "confusion": self.confusion.to_json() if self.confusion else None,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DocumentConsensus:
        confusion = Confusion.from_json(d["confusion"]) if d.get("confusion") else None
        targets = tuple(TargetConsensus.from_json(t) for t in d["targets"])
        return cls(score=d["score"], value=d["value"], targets=targets, confusion=confusion)
