"""`runledger project`: one member of the projector consumer group, until SIGTERM/SIGINT;
and `supervise`, which keeps a projector's loop alive (here and in the API's process).

On a signal the batch in hand commits, the consumer leaves the group (so the others
take its partitions at once, without waiting for the session timeout) and the
process exits 0, all within the shutdown grace (services/shutdown.py): a batch that
cannot commit in time (its database or broker is gone) is left for the next owner,
as a SIGKILLed member's is. A SIGKILLed member is replaced after the session timeout;
its half-done batch never committed, and the new owner resumes from the checkpoint.

Every member publishes a heartbeat into the read model (projections/runtime/heartbeat.py), so
every API replica's /healthz sees it; with `--health-port` it also serves its own
/healthz and /metrics.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from projections.runtime import gc_policy
from projections.runtime.projector import Projector

from .bootstrap import start_runtime
from .notary import publishing
from .settings import Settings
from .shutdown import Grace

log = logging.getLogger("runledger.project")

DEFAULT_GROUP = "runledger-projector"
RESTART_FIRST, RESTART_MAX = 0.2, 10.0  # seconds between restarts: doubling, capped, jittered


async def supervise(projector: Projector, group: str = DEFAULT_GROUP) -> None:
    """Run the projector's loop; when it dies (anything but a stop), record why in
    `projector.down` (health turns red), wait with backoff and start it again."""
    failures = 0
    while True:
        try:
            await projector.run(group=group)
            return  # stopped on request
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - supervised: logged, shown in health, restarted
            failures += 1
            projector.down = f"{type(exc).__name__}: {exc}"
            log.exception("projector loop died (%s time(s)); restarting", failures)
        if projector.stopping:
            return
        await asyncio.sleep(min(RESTART_MAX, RESTART_FIRST * 2 ** (failures - 1)) * random.uniform(1, 1.5))


async def stop_supervised(projector: Projector, task: asyncio.Task, grace: Grace) -> None:
    """Stop a supervised projector within the grace: the batch in hand commits, then the
    member leaves its group; a batch that cannot commit in time is left to the next owner."""
    await grace.stop(task, projector.stop, "the projector")


async def run_projector(settings: Settings, group: str = DEFAULT_GROUP, health_port: int | None = None) -> None:
    grace = Grace(settings.shutdown_grace)
    grace.own_threads()
    gc_policy.install(settings.gc_sweep_seconds)  # short collector pauses (projections/runtime/gc_policy.py)
    runtime = await start_runtime(settings, with_projector=True, grace=grace)
    projector = runtime.projector
    where = "embedded log" if settings.embedded else f"{settings.kafka_bootstrap} topic {settings.topic}"
    log.info("projector joining group %s on %s (read model %s)", group, where,
             settings.read_model_url.split("@")[-1])
    health = asyncio.create_task(_serve_health(runtime, health_port)) if health_port else None
    def stop() -> None:
        log.info("finishing the batch in hand, then leaving the group")
        projector.stop()

    try:
        async def projecting() -> None:
            async with publishing(runtime):  # signed heads on the log (services/notary.py)
                await supervise(projector, group)

        await grace.run(asyncio.create_task(projecting()), stop, "the projector")
    finally:
        if health is not None:
            health.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await health
        await runtime.close()
    log.info("projector stopped after %s batches (%s events applied)", projector.batches,
             projector.applied_total)
    await grace.leave()


async def _serve_health(runtime, port: int) -> None:
    """/healthz and /metrics of this process, on 127.0.0.1:`port` (or the settings' host)."""
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, Response

    from .api.status import projection_status
    from .http_server import Server
    from .telemetry import CONTENT_TYPE_LATEST

    app = FastAPI(title="runledger projector")

    @app.get("/healthz")
    async def healthz():
        status = await projection_status(runtime)
        return JSONResponse({"status": status["status"]}, 200 if status["status"] == "ok" else 503)

    @app.get("/metrics")
    async def metrics():
        return Response(runtime.telemetry.exposition(await projection_status(runtime)),
                        media_type=CONTENT_TYPE_LATEST)

    config = uvicorn.Config(app, host=runtime.settings.host, port=port, log_level="warning", lifespan="off")
    await Server(config).serve()
