"""The FastAPI application, built around a Runtime (nothing happens at import)."""
from __future__ import annotations

import asyncio
import contextlib

from fastapi import Depends, FastAPI

from ..bootstrap import Runtime
from ..console import install as install_console
from ..ledger import Ledger, ProjectionLag
from ..notary import publishing
from ..projector_process import stop_supervised, supervise
from ..telemetry import RequestMetrics, Telemetry
from . import errors
from .auth import KeyCache
from .consistency import read_your_writes
from .earned import Earned
from .errors import ApiError
from .guard import RequestGuard
from .idempotency import Idempotency
from .read_cache import CachedReads, ReadCache
from .routes import experiments, ledger, metrics, notary, replay, results, runs


def create_app(runtime: Runtime) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        task = asyncio.create_task(supervise(runtime.projector)) if runtime.projector else None
        await app.state.read_cache.start()
        try:
            async with publishing(runtime):  # signed heads on the log, beside the projector (services/notary.py)
                yield
        finally:
            await app.state.read_cache.close()
            if task is not None:
                await stop_supervised(runtime.projector, task, runtime.grace)

    # Any request may carry a write's position token and is served once the projection passed it.
    app = FastAPI(title="runledger", version="0.1.0", lifespan=lifespan,
                  dependencies=[Depends(read_your_writes)])
    app.state.runtime = runtime
    app.state.ledger = Ledger(runtime)
    control = runtime.control or runtime.engine
    app.state.keys = KeyCache(control)
    settings = runtime.settings
    app.state.read_cache = ReadCache(runtime, settings.read_cache_mb * 1024 * 1024, settings.read_cache_ttl)
    # Outermost last: request id -> guard (key, then body size) -> cached reads -> idempotency -> earned -> routes.
    app.add_middleware(Earned, runtime=runtime)  # a command's answer once its events are on the log (earned.py)
    app.add_middleware(Idempotency, engine_of=lambda: control)
    app.add_middleware(CachedReads, api=app, cache=app.state.read_cache)  # GET run, list runs, summary
    app.add_middleware(RequestGuard, max_body_bytes=runtime.settings.max_body_bytes)
    app.state.telemetry = runtime.telemetry or Telemetry()
    app.add_middleware(RequestMetrics, telemetry=app.state.telemetry)  # outermost: times everything
    errors.install(app)

    @app.exception_handler(ProjectionLag)
    async def lagging(request, exc: ProjectionLag):  # after a command's append: 202 (earned.py)
        error = ApiError(503, "projection_lag", str(exc), {"position": exc.position.token()})
        return await app.exception_handlers[ApiError](request, error)

    for router in (runs.router, results.router, metrics.router, ledger.router, experiments.router, replay.router,
                   notary.router):
        app.include_router(router)
    install_console(app)  # the web console at /console (services/console)
    errors.document_responses(app)
    return app
