"""Ingestion load: fresh passes for runs that exist, sent over HTTP in batches, paced or flat out.

Every pass is new (a resent pass is a cheap rejected duplicate, not the path measured):
`PassPool` hands out (run, document, pass) triples of runs created up front.
"""
from __future__ import annotations

import asyncio
import random
import statistics
import time
from dataclasses import dataclass

import httpx
import orjson

from services.api.routes.common import POSITION_HEADER

from .workload import Workload, pass_payload

CONCURRENCY = 8  # HTTP clients sending batches at once


class PassPool:
    def __init__(self, pool: Workload):
        self._next = ((run, d, i) for run in pool.run_ids for d in range(pool.docs) for i in range(pool.n))
        self._rng = random.Random(11)

    def events(self, count: int) -> list[dict]:
        """`count` wire events (the body items of POST /v1/ledger/events)."""
        out = []
        for run_id, document, pass_index in self._take(count):
            out.append({"type": "DocumentPassCompleted", "run_id": run_id,
                        "payload": pass_payload(self._rng, document, pass_index)})
        return out

    def _take(self, count: int):
        taken = [t for _, t in zip(range(count), self._next)]
        if len(taken) < count:
            raise RuntimeError("bench pass pool exhausted: raise its size in bench/http_rows.py")
        return taken


def bodies(events: list[dict], batch: int) -> list[bytes]:
    return [orjson.dumps({"events": events[i:i + batch]}) for i in range(0, len(events), batch)]


async def flat_out(client: httpx.AsyncClient, path: str, batches: list[bytes], per_batch: int) -> float:
    """Passes/s with CONCURRENCY clients sending every batch; each answer must be 202."""
    queue = list(reversed(batches))

    async def sender() -> None:
        while queue:
            body = queue.pop()
            response = await client.post(path, content=body, headers={"content-type": "application/json"})
            if response.status_code != 202:
                raise RuntimeError(f"POST {path}: {response.status_code} {response.text[:300]}")

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(CONCURRENCY)))
    return len(batches) * per_batch / (time.perf_counter() - started)


@dataclass
class Latency:
    p50_ms: float
    p99_ms: float
    samples: int


async def append_to_visible(client: httpx.AsyncClient, ingest_path: str, read_path: str, probes: list[bytes],
                            background: list[bytes], rate: float, per_batch: int, seconds: float) -> Latency:
    """Background batches paced at `rate` passes/s (open loop) while a probe appends one pass
    at a time and reads it back with its position token; ms from append to visible."""
    interval = per_batch / rate
    stop = time.perf_counter() + seconds
    latencies: list[float] = []
    pending: set[asyncio.Task] = set()

    async def post(body: bytes) -> httpx.Response:
        response = await client.post(ingest_path, content=body, headers={"content-type": "application/json"})
        if response.status_code != 202:
            raise RuntimeError(f"POST {ingest_path}: {response.status_code} {response.text[:300]}")
        return response

    async def load() -> None:
        next_at = time.perf_counter()
        for body in background:
            if time.perf_counter() >= stop:
                return
            pending.add(asyncio.create_task(post(body)))
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

    async def probe() -> None:
        for body in probes:
            if time.perf_counter() >= stop:
                return
            started = time.perf_counter()
            position = (await post(body)).json()["positions"][0]
            read = await client.get(read_path, headers={POSITION_HEADER: position})
            if read.status_code != 200:
                raise RuntimeError(f"GET {read_path}: {read.status_code} {read.text[:300]}")
            latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.01)

    await asyncio.gather(load(), probe())
    await asyncio.gather(*pending)
    latencies.sort()
    return Latency(statistics.median(latencies), latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
                   len(latencies))
