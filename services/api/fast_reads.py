"""A fast path for the three hottest reads, `GET /v1/workflows/experiments/runs/{id}`,
`GET /v1/workflows/experiments/runs` (the first page, unfiltered) and
`GET /v1/workflows/experiments/metrics?run_id=...` (the summary, nothing else asked), in
front of FastAPI.

Pure ASGI, inside the request id, telemetry and guard layers (so those still log, count
and guard these requests), outside FastAPI's routing, dependency solving and exception
layers, which were ~80 % of such a read (docs/benchmarks.md, "Reads"). It answers only
the common case, with the very bytes and headers the FastAPI route answers:

- no query string at all (the summary: `run_id` alone), no read-your-writes position header;
- a key the key cache (auth.KeyCache) says is valid and unrevoked;
- every run it answers has its stored resource (runs.resource).

Anything else, and any error while answering (a store that went away, a run that is not
the caller's), falls through, before a byte is sent, to the FastAPI route, which owns
every 4xx/5xx, the 404, as_of, position tokens, rendering legacy rows and the OpenAPI
schema (the routes are unchanged).
"""
from __future__ import annotations

import logging
from typing import Any, NamedTuple

import orjson
from fastapi.responses import JSONResponse
from sqlalchemy import Select, TypeDecorator, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.datastructures import Headers, QueryParams
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from projections.store import views
from projections.store.database import reader
from projections.store.pagination import PageRequest, ordered, page_of
from projections.store.tables import runs

from .. import logs
from .auth import Caller, KeyCache, valid_caller
from .context import Ctx
from .routes import metrics as metrics_routes, runs as run_routes
from .routes.common import POSITION_HEADER, envelope

log = logging.getLogger("runledger.api")

RUNS = "/v1/workflows/experiments/runs"
_RUN_PREFIX = RUNS + "/"
METRICS = "/v1/workflows/experiments/metrics"
_FIRST_PAGE = PageRequest()  # page_request's defaults: limit 20, newest first


class FastReads:
    """`api` is the FastAPI app (its runtime and key cache); the runs router's route objects
    label the answers in request logs and telemetry as routing would have.
    `served` counts the requests it answered itself (tests read it)."""

    def __init__(self, app: ASGIApp, api):
        self.app = app
        self.runtime = api.state.runtime
        self.keys: KeyCache = api.state.keys
        self.ledger = api.state.ledger
        self.get_route = _route(run_routes.router.routes, RUNS + "/{run_id}")
        self.list_route = _route(run_routes.router.routes, RUNS)
        self.metrics_route = _route(metrics_routes.router.routes, METRICS)
        self.served = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await self._answer(scope) if _candidate(scope) else None
        if body is None:
            return await self.app(scope, receive, send)
        self.served += 1
        await Response(body, media_type="application/json")(scope, receive, send)

    async def _answer(self, scope: Scope) -> bytes | None:
        """The body of a 200 the route would answer, or None: let the route answer."""
        headers = Headers(scope=scope)
        if POSITION_HEADER in headers:
            return None
        try:
            caller = await valid_caller(self.keys, headers)
            if caller is None:
                return None
            path = scope["path"]
            if path == RUNS:
                return await self._listed(scope, caller)
            if path == METRICS:
                return await self._summary(scope, caller)
            return await self._one(scope, caller, path[len(_RUN_PREFIX):])
        except Exception:  # noqa: BLE001 - the route answers it (a 503 for a store that went away)
            log.debug("fast read fell through", exc_info=True)
            return None

    async def _one(self, scope: Scope, caller: Caller, run_id: str) -> bytes | None:
        async with reader(self.runtime.engine).connect() as conn:
            rows = await _ONE.rows(conn, {"run_id": run_id, "org_id": caller.org_id})
        if not rows or rows[0][0] is None:  # a 404, or a row older than runs.resource
            return None
        _served(scope, caller, self.get_route, {"run_id": run_id})
        return rows[0][0].encode()

    async def _listed(self, scope: Scope, caller: Caller) -> bytes | None:
        async with reader(self.runtime.engine).connect() as conn:
            rows = await _FIRST.rows(conn, {"org_id": caller.org_id})
        found = page_of([_Listed(*row) for row in rows], _FIRST_PAGE)
        if any(row.resource is None for row in found.rows):
            return None
        _served(scope, caller, self.list_route, {})
        return orjson.dumps(envelope(found, lambda row: orjson.Fragment(row.resource)))

    async def _summary(self, scope: Scope, caller: Caller) -> bytes | None:
        """`?run_id=` alone: the route function itself, called with its defaults, without
        FastAPI's validation of nine query parameters and its dependencies; a 404 (not the
        caller's run) is the route's to answer."""
        run_id = _only_run_id(scope)
        if run_id is None:
            return None
        ctx = Ctx(caller.org_id, self.runtime, self.ledger, caller.role)
        try:
            answer = await metrics_routes.answer(ctx, run_id)
        except HTTPException:
            return None
        _served(scope, caller, self.metrics_route, {})
        return JSONResponse(answer).body  # the route's bytes


class _Statement:
    """A statement built and compiled once, run on PostgreSQL straight through the asyncpg
    connection under the pooled one: SQLAlchemy's `execute` (cache key, compiled-cache
    lookup, result processing) cost ~100 us of CPU per read, about the rest of the answer
    together (docs/benchmarks.md, "Reads", round 3). Elsewhere (SQLite) `execute` as usual.
    Values bound in the statement itself (a LIMIT, a constant) go through their column
    type's bind processing, as `execute` would send them."""

    def __init__(self, statement: Select):
        self.statement = statement
        self._compiled: tuple[str, list[str], dict[str, Any]] | None = None

    async def rows(self, conn: AsyncConnection, params: dict[str, Any]) -> list:
        if conn.dialect.name != "postgresql":
            return list((await conn.execute(self.statement, params)).all())
        sql, names, constants = self._compiled or self._compile(conn.dialect)
        driver = (await conn.get_raw_connection()).driver_connection
        try:
            return await driver.fetch(sql, *[params[n] if n in params else constants[n] for n in names])
        except BaseException:
            # SQLAlchemy never saw this error, so it cannot tell a dead connection (a
            # restarted server) from a live one: leave it out of the pool either way.
            await conn.invalidate()
            raise

    def _compile(self, dialect) -> tuple[str, list[str], dict[str, Any]]:
        compiled = self.statement.compile(dialect=dialect)
        constants = {}
        for name, value in compiled.params.items():
            kind = compiled.binds[name].type
            constants[name] = kind.process_bind_param(value, dialect) if isinstance(kind, TypeDecorator) else value
        self._compiled = (str(compiled), list(compiled.positiontup), constants)
        return self._compiled


class _Listed(NamedTuple):
    """A row of the first page, as `pagination.page_of` and `envelope` read it."""

    id_: str
    resource: str | None
    state: Any
    sort_key_: Any


_ONE = _Statement(views._RUN_RESOURCE)
# The first page of views.list_run_resources with no filters: newest first, built once.
_FIRST = _Statement(ordered(
    select(runs.c.run_id.label("id_"), runs.c.resource, views._STATE_IF_NO_RESOURCE)
    .where(views._visible_runs(bindparam("org_id"))),
    func.coalesce(views.SORTABLE["created_at"], views._EPOCH), runs.c.run_id, True, _FIRST_PAGE.limit))


def _candidate(scope: Scope) -> bool:
    """GET of one of the two run paths with no query string, or of the metrics with only
    `run_id`."""
    if scope["type"] != "http" or scope["method"] != "GET":
        return False
    path = scope["path"]
    if path == METRICS:
        return _only_run_id(scope) is not None
    if scope.get("query_string"):
        return False
    if path == RUNS:
        return True
    return path.startswith(_RUN_PREFIX) and len(path) > len(_RUN_PREFIX) and "/" not in path[len(_RUN_PREFIX):]


def _only_run_id(scope: Scope) -> str | None:
    """The run id of a query string that is `run_id=<id>` and nothing else (parsed as the
    route parses it)."""
    query = QueryParams(scope.get("query_string", b""))
    given = query.getlist("run_id")
    if len(query) != 1 or len(given) != 1:
        return None
    return given[0] or None


def _served(scope: Scope, caller: Caller, route: BaseRoute, path_params: dict) -> None:
    """What routing and `authenticate` leave on the scope, for the request log and telemetry."""
    scope.setdefault("state", {})["caller"] = caller
    logs.org_id.set(caller.org_id)
    scope["route"], scope["path_params"] = route, path_params


def _route(routes, path: str) -> BaseRoute:
    return next(r for r in routes if getattr(r, "path", None) == path and "GET" in getattr(r, "methods", ()))
