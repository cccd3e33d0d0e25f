"""What the console's live pages read (services/console/live.py): a version first, in one
indexed row, and only then, when it moved, the rows that changed. No run state is decoded:
a run is its stored resource (runs.resource) and pass count (runs.passes); a document is
its own row.

Costs (docs/console.md): `run_version` (and `row_versions.org_version`): one row. `page_versions`: the rows
of one page of runs (ids, versions, no JSON). `runs_shown`: the named runs (one resource
each). `document_page`: one page of a run's documents. `changed_documents`: the documents
of a page written after a version.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import orjson
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.store import serialize as ser
from projections.store.pagination import Page, PageRequest, paginate
from projections.store.read_columns import run_resource
from projections.store.tables import run_documents, runs
from projections.store.views import (
    _STATE_IF_NO_RESOURCE, RunFilters, _page_of_runs, _visible_runs, pass_counts, run_from_row
)


class RunShown(NamedTuple):
    """A run as a live page shows it: its resource (the API's JSON), passes recorded, version."""

    resource: dict[str, Any]
    passes: int
    version: int


_RUN_VERSION = select(runs.c.version).where(runs.c.run_id == bindparam("run_id"), _visible_runs(bindparam("org_id")))


async def run_version(conn: AsyncConnection, org_id: str, run_id: str) -> int | None:
    """The run's version (0 for a row from before versions), None when not the caller's."""
    row = (await conn.execute(_RUN_VERSION, {"run_id": run_id, "org_id": org_id})).first()
    return None if row is None else (row.version or 0)


async def page_versions(conn: AsyncConnection, org_id: str, filters: RunFilters, page: PageRequest) -> Page:
    """One page of the runs list as ids and versions (rows with `id_`, `version`)."""
    return await _page_of_runs(conn, org_id, filters, page, runs.c.version)


async def run_page(conn: AsyncConnection, org_id: str, filters: RunFilters, page: PageRequest) -> tuple[Page, list]:
    """One page of the runs list, drawn whole: the page, and each run as `RunShown`."""
    found = await _page_of_runs(conn, org_id, filters, page, *_SHOWN)
    return found, await _shown(conn, found.rows)


_SHOWN = (runs.c.resource, *_STATE_IF_NO_RESOURCE, runs.c.passes, runs.c.version)


async def runs_shown(conn: AsyncConnection, org_id: str, run_ids: list[str]) -> dict[str, RunShown]:
    """The named runs of the caller's (those still visible), by id."""
    if not run_ids:
        return {}
    query = select(runs.c.run_id.label("id_"), *_SHOWN).where(runs.c.run_id.in_(run_ids), _visible_runs(org_id))
    rows = (await conn.execute(query)).all()
    return {row.id_: shown for row, shown in zip(rows, await _shown(conn, rows))}


async def _shown(conn: AsyncConnection, rows: list) -> list[RunShown]:
    legacy = [row.id_ for row in rows if row.passes is None]  # written before runs.passes: count the documents
    counted = await pass_counts(conn, legacy) if legacy else {}
    return [RunShown(_resource(row), row.passes if row.passes is not None else counted[row.id_], row.version or 0)
            for row in rows]


def _resource(row) -> dict[str, Any]:
    return orjson.loads(row.resource) if row.resource is not None else run_resource(run_from_row(row))


async def run_shown(conn: AsyncConnection, org_id: str, run_id: str) -> RunShown | None:
    return (await runs_shown(conn, org_id, [run_id])).get(run_id)


async def document_page(conn: AsyncConnection, run_id: str, page: PageRequest) -> Page:
    """One page of the run's documents in their order; cursors are document indexes.
    Rows: `idx`, `version`, `document` (its DocumentState)."""
    query = select(run_documents.c.idx.label("id_"), run_documents.c.idx, run_documents.c.version,
                   run_documents.c.state).where(run_documents.c.run_id == run_id)
    found = await paginate(conn, query, run_documents.c.idx, run_documents.c.idx, page, by_offset=True)
    return Page([_document(row) for row in found.rows], found.before, found.after)


class DocumentShown(NamedTuple):
    idx: int
    version: int
    document: Any  # DocumentState


def _document(row) -> DocumentShown:
    return DocumentShown(row.idx, row.version or 0, ser.document_from_json(row.state))


_CHANGED_DOCUMENTS = select(run_documents.c.idx, run_documents.c.version, run_documents.c.state).where(
    run_documents.c.run_id == bindparam("run_id"), run_documents.c.idx.between(bindparam("lo"), bindparam("hi")),
    run_documents.c.version > bindparam("since")).order_by(run_documents.c.idx)


async def changed_documents(conn: AsyncConnection, run_id: str, lo: int, hi: int, since: int) -> list[DocumentShown]:
    """The documents with index in [lo, hi] written after the run's version `since`."""
    params = {"run_id": run_id, "lo": lo, "hi": hi, "since": since}
    return [_document(row) for row in (await conn.execute(_CHANGED_DOCUMENTS, params)).all()]
