"""Shared query parameters and the list envelope."""
from __future__ import annotations

from typing import Any, Callable, Literal

from fastapi import Query, Response

from events.log import Position
from projections.store.pagination import Page, PageRequest

POSITION_HEADER = "x-runledger-position"


def page_request(
    before: str | None = Query(None),
    after: str | None = Query(None),
    limit: int = Query(20, ge=1, le=1000),
    order: Literal["asc", "desc"] = Query("desc"),
) -> PageRequest:
    return PageRequest(limit=limit, order=order, before=before, after=after)


def envelope(page: Page, render: Callable[[Any], dict]) -> dict:
    return {
        "object": "list",
        "data": [render(row) for row in page.rows],
        "list_metadata": {"before": _str(page.before), "after": _str(page.after)},
    }


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def mark_positions(response: Response, positions: list[Position]) -> None:
    """Write responses carry where their events landed (read-your-writes token)."""
    if positions:
        response.headers[POSITION_HEADER] = ",".join(p.token() for p in positions)
