"""py-spy on the API process of `runledger serve` (production topology: `runledger project`
beside it) while 8 clients POST /v1/ledger/events flat out in batches of 100, and the CPU
the process used per wall second (docs/benchmarks.md, "Ingestion: before -> after").

    .venv/bin/python -m bench.profile_ingest [--out DIR] [--seconds 10]

Starts its own Kafka and PostgreSQL; writes `DIR/ingest.folded` (flame-graph input) and
`DIR/ingest.txt` (the CPU share, then inclusive and self shares per function).
"""
from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

import httpx

from events.codec import encode
from events.kafka_log import KafkaEventLog
from events.log import Message

from . import servers
from .procstat import cpu_seconds
from .http_rows import BATCH, INGEST, PARTITIONS, TOPIC
from .infra import servers as infra_servers
from .ingest import PassPool, bodies, flat_out
from .profile import py_spy, server_profiler_main, summarise
from .run import say
from .workload import Workload, created_only

RATE_GUESS = 8000  # passes/s: sizes the pass pool so the load outlasts the sampling


async def profile_ingest(out: Path, seconds: int) -> None:
    passes = RATE_GUESS * (seconds + 6)
    pool = Workload(passes // (50 * 5) + 1, 50, 5, prefix="pool")
    with tempfile.TemporaryDirectory(prefix="rl-profile-ingest-") as tmp:
        with infra_servers(Path(tmp)) as infra:
            log = KafkaEventLog(infra.kafka, topic=TOPIC, partitions=PARTITIONS)
            await log.start()
            try:
                await log.append([Message(e.aggregate_id, encode(e)) for e in created_only(pool)])
            finally:
                await log.close()
            async with servers.runledger(infra, TOPIC, Path(tmp)) as (server, key, admin):
                async with httpx.AsyncClient(base_url=server.url, headers={"Api-Key": key}, timeout=120,
                                             limits=httpx.Limits(max_connections=32)) as client:
                    await servers.caught_up(client, admin)
                    batches = bodies(PassPool(pool).events(passes), BATCH)
                    load = asyncio.create_task(flat_out(client, INGEST, batches, BATCH))
                    await asyncio.sleep(2)  # past the first connections
                    cpu_before, wall_before = cpu_seconds(server.proc.pid, descendants=False), time.monotonic()
                    folded = out / "ingest.folded"
                    await asyncio.to_thread(py_spy, server.proc.pid, seconds, folded)
                    busy = (cpu_seconds(server.proc.pid, descendants=False) - cpu_before) / (time.monotonic() - wall_before)
                    rate = await load
                    head = (f"API process CPU while sampled: {busy:.2f} CPU-seconds per second; "
                            f"load {rate:,.0f} passes/s over the whole send; machine load average "
                            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n\n")
                    (out / "ingest.txt").write_text(head + summarise(folded, 60))
                    say(f"{head.strip()}; profile: {out / 'ingest.txt'}")


def main() -> None:
    server_profiler_main("bench.profile_ingest", profile_ingest, default_seconds=10)


if __name__ == "__main__":
    main()
