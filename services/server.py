"""Run the API with uvicorn on a built Runtime; close everything on the way out."""
from __future__ import annotations

import logging

import uvicorn

from .api.app import create_app
from .bootstrap import start_runtime
from .keys import ensure_bootstrap_key
from .settings import Settings

log = logging.getLogger("runledger")


async def serve(settings: Settings, worker: str | None = None, worker_concurrency: int = 8) -> None:
    """`worker` (MODULE:FUNCTION): also run that block over pending runs, in this process."""
    runtime = await start_runtime(settings)
    in_server = None
    try:
        key = await ensure_bootstrap_key(runtime.control, settings.bootstrap_key)
        if key:
            print(f"\nrunledger: first start, created an API key for org 'default' (shown once):\n\n    {key}\n",
                  flush=True)
        where = "embedded log at " + str(settings.log_path) if settings.embedded else settings.kafka_bootstrap
        log.info("runledger on http://%s:%s (%s; read model %s)", settings.host, settings.port, where,
                 settings.read_model_url.split("@")[-1])
        config = uvicorn.Config(create_app(runtime), host=settings.host, port=settings.port,
                                log_level="warning", lifespan="on")
        if worker:
            from .worker.in_server import InServerWorker
            in_server = InServerWorker(worker, runtime.log, worker_concurrency)
            in_server.start()
        await uvicorn.Server(config).serve()
    finally:
        if in_server is not None:
            await in_server.stop()
        await runtime.close()
