"""append -> visible at one rate, beside the live projector's own batch times.

    .venv/bin/python bench/latency_breakdown.py --rate 1095 [--seconds 10]

The production topology of the table's HTTP rows (`runledger serve` + `runledger project`
on Kafka + PostgreSQL, the workload projected first); then background batches of 100 paced
at `--rate` passes/s while a probe appends one pass and reads its run back with its
position token (bench.ingest.append_to_visible, as the table measures it). The projector
logs JSON lines (RUNLEDGER_LOG_FORMAT=json); its `runledger.projector.batch` lines of the
same window give each batch's events and time (`ms`, decode to commit), its steps, and the
garbage collector's pauses inside it (`gc_ms`; RUNLEDGER_GC_SWEEP_SECONDS=0 in the
environment measures CPython's own collector, projections/runtime/gc_policy.py).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ["RUNLEDGER_LOG_FORMAT"] = "json"  # the servers started below inherit it

import httpx  # noqa: E402

from bench import servers  # noqa: E402
from bench.http_rows import BATCH, INGEST, TOPIC, append_workload, endpoints  # noqa: E402
from bench.infra import servers as infra_servers  # noqa: E402
from bench.ingest import PassPool, append_to_visible, bodies  # noqa: E402
from bench.workload import Workload  # noqa: E402


async def measure(infra, workdir: Path, rate: float, seconds: float) -> None:
    workload = Workload()
    wanted = rate * seconds + seconds / 0.01 + 50  # the background's passes and the probes'
    pool = Workload(max(60, int(wanted // (workload.docs * workload.n)) + 2), workload.docs, workload.n, prefix="pool")
    await append_workload(infra, workload, pool)
    async with servers.runledger(infra, TOPIC, workdir) as (server, key, admin):
        async with httpx.AsyncClient(base_url=server.url, headers={"Api-Key": key}, timeout=120) as client:
            await servers.caught_up(client, admin)
            projector_log = workdir / "project.log"
            mark = len(projector_log.read_text().splitlines())
            passes = PassPool(pool)
            background = bodies(passes.events(int(rate * seconds)), BATCH)
            probes = bodies(passes.events(int(seconds / 0.01) + 50), 1)
            found = await append_to_visible(client, INGEST, endpoints(workload.run_ids[0])["GET run"], probes,
                                            background, rate, BATCH, seconds)
            lines = projector_log.read_text().splitlines()[mark:]
    batches = [json.loads(line) for line in lines if line.startswith("{") and '"ms"' in line]
    times = sorted(b["ms"] for b in batches)
    print(f"append -> visible at {rate:,.0f} passes/s: p50 {found.p50_ms:.0f} ms, p99 {found.p99_ms:.0f} ms "
          f"({found.samples} probes)")
    print(f"projector: {len(times)} batches, median {statistics.median(b['events'] for b in batches):.0f} events; "
          f"time p50 {statistics.median(times):.1f} ms, p90 {times[int(len(times) * 0.9)]:.1f}, "
          f"p99 {times[int(len(times) * 0.99)]:.1f}, max {times[-1]:.1f}")
    for step in ("decode", "load", "fold", "write"):
        spent = sorted(b.get("steps", {}).get(step, 0.0) for b in batches)
        print(f"  {step}: p50 {statistics.median(spent):.1f} ms, p90 {spent[int(len(spent) * 0.9)]:.1f}, "
              f"p99 {spent[int(len(spent) * 0.99)]:.1f}")
    paused = sorted(b.get("gc_ms", 0.0) for b in batches)  # the collector's pauses inside each batch
    print(f"  collector: {sum(1 for ms in paused if ms >= 1)} batches paused 1 ms or more, "
          f"max {paused[-1]:.1f} ms, {sum(paused):.0f} ms in all")


def main() -> None:
    parser = argparse.ArgumentParser(prog="latency_breakdown")
    parser.add_argument("--rate", type=float, required=True, help="background passes/s")
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rl-latency-") as tmp:
        with infra_servers(Path(tmp)) as infra:
            workdir = Path(tmp) / "servers"
            workdir.mkdir()
            asyncio.run(measure(infra, workdir, args.rate, args.seconds))


if __name__ == "__main__":
    main()
