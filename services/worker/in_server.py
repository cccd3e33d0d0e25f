"""`runledger serve --worker MODULE:FUNCTION`: workers inside the server process.

The worker reads runs from the server's own log (embedded or Kafka) and appends its
facts straight onto it, for every organisation: a process that owns the log is a
trusted producer, as a worker writing to Kafka is. So on the embedded default one
process is enough for a created run to finish by itself.
"""
from __future__ import annotations

import asyncio
import logging
import os

from events.log import EventLog
from events.producer import Producer

from ..shutdown import Grace
from .blocks import load_block
from .harness import Worker

log = logging.getLogger("runledger.worker")


class LogProducers:
    """One producer onto `log_` per organisation, made on first use; the caller owns the log."""

    def __init__(self, log_: EventLog):
        self.log = log_
        self._by_org: dict[str, Producer] = {}

    async def for_org(self, org_id: str) -> Producer:
        producer = self._by_org.get(org_id)
        if producer is None:
            producer = Producer.over_log(self.log, org_id=org_id, producer=f"worker:serve:{os.getpid()}")
            await producer.start()
            self._by_org[org_id] = producer
        return producer


class InServerWorker:
    """Start with the server (`start`), stop with it (`stop`: passes in hand finish)."""

    def __init__(self, spec: str, log_: EventLog, concurrency: int = 8):
        self.spec = spec
        self.worker = Worker(load_block(spec), LogProducers(log_), log_, org_id=None, concurrency=concurrency,
                             name=f"serve:{os.getpid()}")
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.worker.run())
        log.info("worker %s: block %s, every organisation, concurrency %d", self.worker.name, self.spec,
                 self.worker.concurrency)

    async def stop(self, grace: Grace) -> None:
        """Passes in hand finish until WORK of the shutdown grace; past that they are cancelled
        (the worker that next takes their run does them again)."""
        if self._task is not None:
            await grace.stop(self._task, self.worker.stop, "the in-server worker")
