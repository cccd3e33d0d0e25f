"""Keyset pagination over (sort key, id): stable under concurrent inserts."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True)
class PageRequest:
    limit: int = 20
    order: str = "desc"
    before: str | None = None
    after: str | None = None


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    before: str | None
    after: str | None


class UnknownCursor(LookupError):
    pass


async def paginate(conn: AsyncConnection, query: Select, sort, id_col, page: PageRequest) -> Page:
    """`after` = the last id of the page you hold (next page); `before` = its first id."""
    cursor_id = page.after or page.before
    forward = page.before is None
    descending = (page.order == "desc") == forward
    if cursor_id is not None:
        query = query.where(await _beyond(conn, query, sort, id_col, cursor_id, descending))
    ordering = (sort.desc(), id_col.desc()) if descending else (sort.asc(), id_col.asc())
    rows = list((await conn.execute(query.order_by(*ordering).limit(page.limit + 1))).all())
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    if not forward:
        rows.reverse()
    if not rows:
        return Page(rows, None, None)
    first, last = rows[0].id_, rows[-1].id_
    if forward:
        return Page(rows, first if cursor_id else None, last if more else None)
    return Page(rows, first if more else None, last)


async def _beyond(conn, query: Select, sort, id_col, cursor_id: str, descending: bool):
    lookup = query.with_only_columns(sort.label("k")).where(id_col == cursor_id)
    found = (await conn.execute(lookup)).first()
    if found is None:
        raise UnknownCursor(cursor_id)
    key = found.k
    if descending:
        return or_(sort < key, and_(sort == key, id_col < cursor_id))
    return or_(sort > key, and_(sort == key, id_col > cursor_id))
