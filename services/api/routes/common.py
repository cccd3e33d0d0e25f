"""Shared query parameters, the list envelope, and pages bounded in bytes."""
from __future__ import annotations

import inspect
from typing import Any, Awaitable, Callable, Literal

import orjson
from fastapi import Query, Response

from events.log import Position
from projections.store.pagination import PAGE_MAX_BYTES, Page, PageRequest, shrink

from ...fairness import breathe

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


ENVELOPE_RESERVE = 4096
"""Bytes kept for the envelope around a page's items: `object`, `list_metadata` and its
two cursors (a cursor holds an id of at most 1,024 UTF-8 bytes, ~1.4 KB in base64)."""


async def fit_page(page: Page, request: PageRequest, render: Callable[[Any], bytes | Awaitable[bytes]],
                   max_bytes: int = PAGE_MAX_BYTES, by_offset: bool = False) -> tuple[Page, list[bytes]]:
    """A page bounded in bytes: `page`'s rows rendered one by one (`render(row)`: the
    item's JSON bytes, or an awaitable of them), nearest the cursor first, for as long as
    they fit `max_bytes` with the envelope; the page shrinks to the rows that fit and its
    cursor continues after the last one (`pagination.shrink`). At least one row is kept.
    Rows beyond the first that does not fit are never rendered, so a render that reads
    (an experiment's document list) reads no more than one item past the page's bound.
    Returns the page and its items in page order; `list_response` answers them."""
    backward = request.before is not None
    budget, used, items = max_bytes - ENVELOPE_RESERVE, 0, []
    for row in (reversed(page.rows) if backward else page.rows):
        await breathe()  # another organisation's request may run between two items
        item = render(row)
        if inspect.isawaitable(item):
            item = await item
        if items and used + len(item) + 1 > budget:
            break
        items.append(item)
        used += len(item) + 1
    if backward:
        items.reverse()
    return shrink(page, request, len(items), by_offset), items


def list_response(page: Page, items: list[bytes]) -> Response:
    """`envelope`'s JSON with items already rendered (`fit_page`), spliced in as they are."""
    metadata = orjson.dumps({"before": _str(page.before), "after": _str(page.after)})
    body = b'{"object":"list","data":[' + b",".join(items) + b'],"list_metadata":' + metadata + b"}"
    return Response(body, media_type="application/json")
