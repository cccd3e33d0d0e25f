"""Rows of the one table: a runledger figure beside its yardstick, and the ratio."""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field

NOT_YET = "not yet"


@dataclass
class Figure:
    """Repeated measurements of one thing; shown as the median (and p50/p99 for latency)."""

    unit: str  # "events/s", "req/s", "passes/s", "ms"
    values: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    def text(self) -> str:
        if not self.values:
            return self.note or NOT_YET
        if self.unit == "ms":  # a latency: values are p99s
            text = f"p50 {_ms(statistics.median(self.p50))}, p99 {_ms(self.median)}"
        else:
            text = f"{_num(self.median)} {self.unit}"
        if self.p50 and self.unit != "ms":
            text += f", p50 {_ms(statistics.median(self.p50))}, p99 {_ms(statistics.median(self.p99))}"
        return text + (f" ({self.note})" if self.note else "")


@dataclass
class Row:
    path: str
    ours: Figure
    yardstick_name: str = ""
    yardstick: Figure | None = None
    ratio_note: str = ""  # e.g. "lower is better"

    def ratio(self) -> str:
        if self.yardstick is None or self.ours.median is None or not self.yardstick.median:
            return ""
        ratio = self.ours.median / self.yardstick.median
        text = f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.3f}x"
        return f"{text} ({self.ratio_note})" if self.ratio_note else text

    def cells(self) -> list[str]:
        yardstick = ""
        if self.yardstick is not None:
            yardstick = f"{self.yardstick_name}: {self.yardstick.text()}"
        return [self.path, self.ours.text(), yardstick, self.ratio()]


HEADER = ["path", "runledger", "yardstick (same run)", "ratio"]


def markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def _num(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def _ms(value: float) -> str:
    return f"{value:.1f} ms" if value < 100 else f"{value:,.0f} ms"
