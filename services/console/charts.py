"""Geometry for the console's small inline SVG charts, computed server-side.

No chart library: a progress bar and a score line are a few rectangles and a
polyline, and drawing them here keeps the page free of scripts and of inline styles
(the CSP forbids both)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Segment:
    x: float
    width: float
    kind: str


def progress(done: int, failed: int, total: int) -> list[Segment]:
    """Done then failed, as percentages of the bar's width."""
    if total <= 0:
        return []
    done_w = 100 * min(done, total) / total
    failed_w = min(100 - done_w, 100 * failed / total)
    return [Segment(0, done_w, "done"), Segment(done_w, failed_w, "failed")]


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str
    score: float
    href: str


@dataclass(frozen=True)
class LineChart:
    width: int
    height: int
    points: list[Point]
    ticks: list[tuple[float, str]]

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


PAD_LEFT, PAD, WIDTH, HEIGHT = 44, 14, 640, 180


def score_line(scored: list[tuple[str, float, str]]) -> LineChart:
    """`scored`: (label, score in 0..1, link) in run order; y runs 0..1 bottom to top."""
    inner_w, inner_h = WIDTH - PAD_LEFT - PAD, HEIGHT - 2 * PAD
    step = inner_w / max(1, len(scored) - 1)
    points = [Point(PAD_LEFT + (i * step if len(scored) > 1 else inner_w / 2),
                    PAD + inner_h * (1 - score), label, score, href)
              for i, (label, score, href) in enumerate(scored)]
    ticks = [(PAD + inner_h * (1 - v), f"{int(v * 100)}%") for v in (0, 0.25, 0.5, 0.75, 1)]
    return LineChart(WIDTH, HEIGHT, points, ticks)
