"""py-spy (`--gil`: Python on the CPU) on `runledger serve` under wrk, one read endpoint at
a time: GET run, list runs, metrics summary (docs/benchmarks.md, "Reads: before -> after").

    .venv/bin/python -m bench.profile_reads [--out DIR] [--seconds 8]

Starts its own Kafka and PostgreSQL, appends bench/workload.py's workload, waits until
the server has projected it, then writes `DIR/<endpoint>.folded` (flame-graph input) and
`DIR/<endpoint>.txt` (inclusive and self shares per function, bench.profile.summarise).
"""
from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import httpx

from events.kafka_log import KafkaEventLog

from . import servers, wrk
from .http_rows import PARTITIONS, TOPIC, endpoints
from .infra import servers as infra_servers
from .profile import py_spy, server_profiler_main, summarise
from .run import say
from .workload import Workload


async def profile_reads(out: Path, seconds: int) -> None:
    workload = Workload()
    with tempfile.TemporaryDirectory(prefix="rl-profile-reads-") as tmp:
        with infra_servers(Path(tmp)) as infra:
            log = KafkaEventLog(infra.kafka, topic=TOPIC, partitions=PARTITIONS)
            await log.start()
            try:
                await log.append(workload.messages)
            finally:
                await log.close()
            async with servers.runledger(infra, TOPIC, Path(tmp)) as (server, key, admin):
                async with httpx.AsyncClient(base_url=server.url, headers={"Api-Key": key}, timeout=60) as client:
                    await servers.caught_up(client, admin)
                for name, path in endpoints(workload.run_ids[0]).items():
                    _sample(server, server.url + path, key, out / name.replace(" ", "-"), seconds)
                    say(f"{name} under wrk, py-spy --gil: {out / name.replace(' ', '-')}.txt")


def _sample(server, url: str, key: str, stem: Path, seconds: int) -> None:
    load = threading.Thread(target=wrk.run, args=(url, seconds + 3, {"Api-Key": key}))
    load.start()
    folded = stem.with_suffix(".folded")
    py_spy(server.proc.pid, seconds, folded, gil=True)
    load.join()
    stem.with_suffix(".txt").write_text(summarise(folded, 60))


def main() -> None:
    server_profiler_main("bench.profile_reads", profile_reads, default_seconds=8)


if __name__ == "__main__":
    main()
