"""`runledger project`: one member of the projector consumer group, until SIGTERM/SIGINT.

On a signal the batch in hand commits, the consumer leaves the group (so the others
take its partitions at once, without waiting for the session timeout) and the
process exits 0. A SIGKILLed member is replaced after the session timeout; its
half-done batch never committed, and the new owner resumes from the checkpoint.
"""
from __future__ import annotations

import asyncio
import logging
import signal

from .bootstrap import start_runtime
from .settings import Settings

log = logging.getLogger("runledger.project")

DEFAULT_GROUP = "runledger-projector"


async def run_projector(settings: Settings, group: str = DEFAULT_GROUP) -> None:
    runtime = await start_runtime(settings, with_projector=True)
    projector = runtime.projector
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _stopper(projector, sig))
    where = "embedded log" if settings.embedded else f"{settings.kafka_bootstrap} topic {settings.topic}"
    log.info("projector joining group %s on %s (read model %s)", group, where,
             settings.read_model_url.split("@")[-1])
    try:
        await projector.run(group=group)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await runtime.close()
    log.info("projector stopped after %s batches (%s events applied)", projector.batches,
             projector.applied_total)


def _stopper(projector, sig: signal.Signals):
    def stop() -> None:
        log.info("%s: finishing the batch in hand, then leaving the group", sig.name)
        projector.stop()
    return stop
