"""Keyset pagination over (sort key, id): stable under concurrent inserts and updates.

A cursor carries the sort key and id of the row it stands for, so it keeps working
when that row changes or stops matching the filter (a client paging `status=running`
while the run at its cursor finishes, a deleted experiment): the next page starts
right after that key, wherever the row went. Cursors are opaque strings
(`c1.<base64url JSON>`); a cursor from before this format (a bare id) is still
resolved by looking the row up. A cursor that is neither is `InvalidCursor`.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson
from sqlalchemy import Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncConnection

_PREFIX = "c1."
MAX_OFFSET = 2**63 - 1
PAGE_MAX_BYTES = 1_000_000
"""The most one page of a list answers, in bytes, envelope included (docs/api.md, "What a
request costs"): a page whose items would not fit holds fewer, and its cursor continues
from the last one it holds. A page holds at least one item, so one item bigger than the
bound (which the event contract keeps to about its own size) still pages through."""


@dataclass(frozen=True)
class PageRequest:
    limit: int = 20
    order: str = "desc"
    before: Any = None
    after: Any = None


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    before: str | None
    after: str | None


class InvalidCursor(ValueError):
    """A cursor this API did not hand out (or whose row is unknown): a client mistake."""

    def __init__(self, cursor: Any, why: str = "not a cursor from this list"):
        super().__init__(f"invalid cursor {str(cursor)[:100]!r}: {why}")
        self.cursor = cursor


UnknownCursor = InvalidCursor  # the old name


def encode_cursor(key: Any, ident: Any) -> str:
    tagged = ["t", key.isoformat()] if isinstance(key, datetime) else ["v", key]
    return _PREFIX + base64.urlsafe_b64encode(orjson.dumps([*tagged, ident])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Any, Any] | None:
    """(key, id) of a cursor in this format; None for anything else (maybe an old bare id)."""
    if not cursor.startswith(_PREFIX):
        return None
    raw = cursor[len(_PREFIX):]
    try:
        tag, key, ident = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        if tag == "t":
            key = datetime.fromisoformat(key).astimezone(timezone.utc)  # out of range: OverflowError
        elif tag != "v" or not isinstance(key, (int, float, str, type(None))) or isinstance(key, bool):
            raise ValueError(tag)
        if not isinstance(ident, (str, int)) or isinstance(ident, bool):
            raise ValueError(ident)
        _check_int(key)
        _check_int(ident)
    except (ValueError, TypeError, OverflowError, orjson.JSONDecodeError):
        raise InvalidCursor(cursor, "malformed") from None
    return key, ident


def _check_int(value: Any) -> None:
    if isinstance(value, int) and not -MAX_OFFSET <= value <= MAX_OFFSET:
        raise ValueError(value)


async def paginate(conn: AsyncConnection, query: Select, sort, id_col, page: PageRequest,
                   by_offset: bool = False) -> Page:
    """`after` = the cursor of the page you hold (next page); `before` = its first cursor.
    `by_offset`: the sort key is the id (an integer, a run's history), and so is the cursor."""
    cursor = page.after if page.after is not None else page.before
    forward = page.before is None
    descending = (page.order == "desc") == forward
    if cursor is not None:
        key, ident = (cursor, cursor) if by_offset else await _locate(conn, query, sort, id_col, cursor)
        query = query.where(_beyond(sort, id_col, key, ident, descending))
    rows = list((await conn.execute(ordered(query, sort, id_col, descending, page.limit))).all())
    return page_of(rows, page, by_offset)


def ordered(query: Select, sort, id_col, descending: bool, limit: int) -> Select:
    """`query` in page order, one row beyond the page (to tell whether there is more)."""
    ordering = (sort.desc(), id_col.desc()) if descending else (sort.asc(), id_col.asc())
    return query.add_columns(sort.label("sort_key_")).order_by(*ordering).limit(limit + 1)


def page_of(rows: list, page: PageRequest, by_offset: bool = False) -> Page:
    """The page from `ordered`'s rows (which carry `id_` and `sort_key_`)."""
    cursor = page.after if page.after is not None else page.before
    forward = page.before is None
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    if not forward:
        rows.reverse()
    if not rows:
        return Page(rows, None, None)
    first, last = (_cursor_of(rows[0], by_offset), _cursor_of(rows[-1], by_offset))
    if forward:
        return Page(rows, first if cursor is not None else None, last if more else None)
    return Page(rows, first if more else None, last)


def shrink(page: Page, request: PageRequest, keep: int, by_offset: bool = False) -> Page:
    """`page` cut to its `keep` rows nearest the cursor it was asked from (the first ones
    of a page asked `after=`, or with no cursor; the last ones of a page asked `before=`),
    with a cursor on the cut side that continues where it stopped."""
    if keep >= len(page.rows):
        return page
    if request.before is None:
        rows = page.rows[:keep]
        return Page(rows, page.before, _cursor_of(rows[-1], by_offset))
    rows = page.rows[len(page.rows) - keep:]
    return Page(rows, _cursor_of(rows[0], by_offset), page.after)


def _cursor_of(row, by_offset: bool) -> str:
    return str(row.id_) if by_offset else encode_cursor(row.sort_key_, row.id_)


async def _locate(conn, query: Select, sort, id_col, cursor: Any) -> tuple[Any, Any]:
    decoded = decode_cursor(str(cursor))
    if decoded is not None:
        if not (_fits(sort, decoded[0]) and _fits(id_col, decoded[1])):
            raise InvalidCursor(cursor, "from another list")
        return decoded
    lookup = query.with_only_columns(sort.label("k")).where(id_col == cursor)  # an old bare-id cursor
    found = (await conn.execute(lookup)).first()
    if found is None:
        raise InvalidCursor(cursor)
    return found.k, cursor


def _fits(column, value: Any) -> bool:
    """A cursor's value has the type of the column it is compared with (else a cursor from
    another list would reach the database as a type error)."""
    kind = getattr(column.type, "impl_instance", column.type)  # a TypeDecorator: the type under it
    try:
        expected = kind.python_type
    except NotImplementedError:
        return True
    if expected is float:
        return isinstance(value, (int, float))
    return isinstance(value, expected)


def _beyond(sort, id_col, key: Any, ident: Any, descending: bool):
    if descending:
        return or_(sort < key, and_(sort == key, id_col < ident))
    return or_(sort > key, and_(sort == key, id_col > ident))
