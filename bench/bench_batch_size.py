"""The projector's catch-up rate by batch size (records per poll), Kafka -> PostgreSQL.

    .venv/bin/python bench/bench_batch_size.py [--sizes 500,2000] [--repeat 3] [--consensus]

Issue 11's workload on a 6-partition topic, appended once; then, for each repetition, each
size in turn (interleaved, so drift in the machine's load falls on every size alike) catches
up into a fresh database. Prints each run and the medians.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.infra import servers  # noqa: E402
from bench.projection import catch_up  # noqa: E402
from bench.workload import Workload  # noqa: E402
from events.kafka_log import KafkaEventLog  # noqa: E402


async def measure(infra, sizes: list[int], repeat: int, consensus_on: bool) -> dict[int, list[float]]:
    workload = Workload()
    log = KafkaEventLog(infra.kafka, topic="bench.batch-size")
    await log.start()
    rates: dict[int, list[float]] = {size: [] for size in sizes}
    try:
        await log.append(workload.messages)
        for rep in range(repeat):
            for size in sizes:
                url = await infra.new_database(f"batch_{size}")
                seconds = await catch_up(log, url, len(workload), consensus_on=consensus_on,
                                         group=f"batch-{size}-{rep}", batch_size=size)
                rates[size].append(len(workload) / seconds)
                print(f"rep {rep + 1} batch {size}: {rates[size][-1]:,.0f} events/s", flush=True)
    finally:
        await log.close()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench_batch_size")
    parser.add_argument("--sizes", default="500,2000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--consensus", action="store_true", help="score documents (default: a constant)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="rl-batch-size-") as tmp:
        with servers(Path(tmp)) as infra:
            rates = asyncio.run(measure(infra, sizes, args.repeat, args.consensus))
    for size, values in rates.items():
        print(f"batch {size}: median {statistics.median(values):,.0f} events/s "
              f"({' / '.join(f'{v:,.0f}' for v in values)})")


if __name__ == "__main__":
    main()
