"""Wiring for `runledger worker` and `runledger demo`: the log to read, the producer to
emit through, the organisation to work for, and signals for a graceful stop."""
from __future__ import annotations

import asyncio
import logging
import os
import sys
from dataclasses import dataclass

import httpx

from events.log import EventLog

from ..bootstrap import build_log
from ..settings import DEFAULT_API_URL, Settings
from ..shutdown import CLOSED, Grace
from .blocks import load_block
from .harness import Worker



class SetupError(RuntimeError):
    """A worker cannot start; the message says what to do."""


@dataclass(frozen=True)
class Emit:
    """Where facts go: over HTTP (api_url + api_key) or straight to Kafka (org)."""

    api_url: str | None = None
    api_key: str | None = None
    org: str | None = None


def open_log(settings: Settings) -> EventLog:
    """The log workers discover runs from: Kafka if configured, else the embedded file,
    which must exist already (a worker on the wrong data dir would wait forever)."""
    if settings.embedded and not settings.log_path.exists():
        raise SetupError(f"no embedded log at {settings.log_path}: start `runledger serve` first, or pass "
                         f"--data-dir (or RUNLEDGER_DATA_DIR) to the server's data directory")
    return build_log(settings)


async def whoami(api_url: str, api_key: str) -> str:
    try:
        async with httpx.AsyncClient(base_url=api_url, headers={"Api-Key": api_key}, timeout=10) as client:
            response = await client.get("/v1/ledger/whoami")
    except httpx.HTTPError as exc:
        raise SetupError(f"cannot reach runledger at {api_url} ({exc}); is `runledger serve` running?") from None
    if response.status_code == 401:
        raise SetupError(f"the API key was refused by {api_url}: {response.json()['detail']['message']}")
    response.raise_for_status()
    return response.json()["org_id"]


async def make_producer(settings: Settings, emit: Emit):
    """A started producer and the organisation it emits for."""
    from events.producer import Producer

    if emit.api_url:
        if not emit.api_key:
            raise SetupError("an API key is needed to emit over HTTP: --api-key or RUNLEDGER_API_KEY")
        org = await whoami(emit.api_url, emit.api_key)
        if emit.org and emit.org != org:
            raise SetupError(f"--org {emit.org!r} but the API key belongs to {org!r}")
        producer = Producer.over_http(emit.api_url, emit.api_key, producer=f"worker:{org}")
    elif settings.kafka_bootstrap and emit.org:
        org = emit.org
        producer = Producer.over_kafka(settings.kafka_bootstrap, org_id=org, topic=settings.topic,
                                       partitions=settings.partitions, producer=f"worker:{org}")
    else:
        raise SetupError("say where results go: --api-url and --api-key, or --kafka-bootstrap and --org")
    await producer.start()
    return producer, org


async def run_until_signalled(worker: Worker, grace: Grace) -> None:
    """SIGINT/SIGTERM: stop starting passes, let those in hand finish until WORK of the shutdown
    grace (past that they are cancelled: the worker that next takes their run does them
    again), leave the group. A second signal: leave now (services/shutdown.py)."""
    await grace.run(asyncio.create_task(worker.run()), worker.stop, f"worker {worker.name}")


async def main(settings: Settings, args) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per emitted fact is too many
    settings = settings.with_(kafka_bootstrap=args.kafka_bootstrap)
    try:
        block = load_block(args.block)
        emit = Emit(_api_url(settings, args.api_url), args.api_key or os.environ.get("RUNLEDGER_API_KEY"), args.org)
        log_ = open_log(settings)
        producer, org = await make_producer(settings, emit)
    except (SetupError, ValueError, ImportError, AttributeError) as exc:
        print(f"runledger worker: {exc}", file=sys.stderr)
        return 2
    grace = Grace(settings.shutdown_grace)
    grace.own_threads()
    await log_.start()
    worker = Worker(block, producer, log_, org_id=org, concurrency=args.concurrency, max_attempts=args.max_attempts,
                    backoff=args.backoff, select=_select(args.workflow_id, args.block_id))
    source = f"Kafka {settings.kafka_bootstrap}" if settings.kafka_bootstrap else settings.log_path
    sink = f"HTTP {emit.api_url}" if emit.api_url else "straight to Kafka"
    print(f"runledger worker {worker.name}: block {args.block}, org {org!r}, concurrency {args.concurrency}, "
          f"max attempts {args.max_attempts}; runs from {source}, results to {sink}", flush=True)
    try:
        await run_until_signalled(worker, grace)
    finally:
        await asyncio.gather(grace.wait(producer.close(), "closing the producer", CLOSED),
                             grace.wait(log_.close(), "closing the log", CLOSED))
    print(f"runledger worker {worker.name}: stopped ({worker.stats.completed} passes completed, "
          f"{worker.stats.failed} failed, {worker.stats.retried} retried)", flush=True)
    await grace.leave()
    return 0


def _api_url(settings: Settings, given: str | None) -> str | None:
    given = given or os.environ.get("RUNLEDGER_API_URL")
    return given or (DEFAULT_API_URL if settings.embedded else None)


def _select(workflow_id: str | None, block_id: str | None):
    if workflow_id is None and block_id is None:
        return None
    return lambda run: ((workflow_id is None or run.spec["workflow_id"] == workflow_id)
                        and (block_id is None or run.spec["block_id"] == block_id))
