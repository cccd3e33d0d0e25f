"""The live path's cost per batch: small batches, as a projector sees them when it keeps up.

    .venv/bin/python bench/live_batches.py [--batch 27] [--repeat 3] [--consensus off] [--live-cache on|off|both]
                                           [--runs 40 --docs 50 --n 5]

The bench workload (bench/workload.py, 10,122 events; `--runs/--docs/--n` another shape) on an embedded log, projected into
a fresh PostgreSQL database (a server started here, fsync on) by one projector polling at
most `--batch` records at a time with bulk catch-up off: every batch goes the way a live
batch goes (load, fold, write, commit). Prints per repetition the batches' time (decode to
commit) p50 / p90 / p99, each step's median (decode, load, fold, write: the `steps` of the
projector's batch log line), the SQL statements a batch sends (a cursor execute each, commit
included) and the events per second. Batches of 27 are what the projector cut at 1,000
passes/s in bench/latency_breakdown.py. Not a test.
"""
from __future__ import annotations

import argparse
import asyncio
import inspect
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event  # noqa: E402

from bench.projection import consensus  # noqa: E402
from bench.workload import Workload  # noqa: E402
from events.sqlite_log import SqliteEventLog  # noqa: E402
from projections.runtime import bulk, tracing  # noqa: E402
from projections.runtime.projector import Projector  # noqa: E402
from projections.store.database import make_engine, prepare_schema  # noqa: E402

STEPS = ("decode", "load", "fold", "write")


async def one(log: SqliteEventLog, url: str, events: int, batch: int, group: str, live_cache: bool = True) -> dict:
    engine = make_engine(url)
    await prepare_schema(url, engine)
    statements = [0]
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: statements.__setitem__(0, statements[0] + 1))
    seen: list[tuple[int, float, dict]] = []
    real = tracing.batch_applied

    def noted(b, projection, seconds):
        seen.append((len(b.records), seconds, dict(getattr(b, "steps", {}))))
        real(b, projection, seconds)

    tracing.batch_applied = noted
    cached = {"live_cache": live_cache} if "live_cache" in inspect.signature(Projector).parameters else {}
    projector = Projector(log, engine, batch_size=batch, catch_up=bulk.CatchUp(enabled=False), **cached)
    task = asyncio.create_task(projector.run(group=group))
    try:
        while not projector.partitions:
            await asyncio.sleep(0.001)
        before, started = statements[0], time.perf_counter()
        while projector.applied_total < events:
            if task.done():
                task.result()
                raise RuntimeError("projector ended")
            await asyncio.sleep(0.002)
        seconds = time.perf_counter() - started
        sent = statements[0] - before
    finally:
        projector.stop()
        await asyncio.wait_for(task, 30)
        tracing.batch_applied = real
        await engine.dispose()
    times = sorted(s for _, s, _ in seen)
    return {"batches": len(seen), "events": sum(n for n, _, _ in seen), "seconds": seconds,
            "p50": times[len(times) // 2], "p90": times[int(len(times) * 0.9)], "p99": times[int(len(times) * 0.99)],
            "median_events": statistics.median(n for n, _, _ in seen),
            "steps": {k: statistics.median(st.get(k, 0.0) for _, _, st in seen) for k in STEPS},
            "statements": sent / max(1, len(seen))}


async def main_async(args) -> None:
    from bench.infra import Infra
    from tests.infra import postgres_server

    workload = Workload(args.runs, args.docs, args.n)
    with tempfile.TemporaryDirectory() as tmp:
        log = SqliteEventLog(Path(tmp) / "log.db", partitions=6)
        await log.start()
        try:
            await log.append(workload.messages)
            with postgres_server(Path(tmp) / "pg") as server:
                infra = Infra("", server)
                modes = {"on": [True], "off": [False], "both": [False, True]}[args.live_cache]
                results: dict[bool, list[dict]] = {mode: [] for mode in modes}
                for rep in range(args.repeat):
                    for mode in modes:  # alternately: the machine's drift falls on both alike
                        url = await infra.new_database(f"live_{rep}_{int(mode)}")
                        with consensus(args.consensus == "on"):
                            r = await one(log, url, len(workload), args.batch, f"live-{rep}-{mode}", mode)
                        results[mode].append(r)
                        steps = ", ".join(f"{k} {1000 * v:.1f}" for k, v in r["steps"].items())
                        print(f"rep {rep + 1}, live cache {'on' if mode else 'off'}: {r['batches']} batches "
                              f"(median {r['median_events']:.0f} events): p50 {1000 * r['p50']:.1f} ms, "
                              f"p90 {1000 * r['p90']:.1f}, p99 {1000 * r['p99']:.1f}; steps (median ms) {steps}; "
                              f"{r['statements']:.1f} statements a batch; {r['events'] / r['seconds']:,.0f} events/s",
                              flush=True)
                for mode, found in results.items():
                    p50 = statistics.median(r["p50"] for r in found)
                    p99 = statistics.median(r["p99"] for r in found)
                    rate = statistics.median(r["events"] / r["seconds"] for r in found)
                    print(f"live cache {'on' if mode else 'off'}, median of {len(found)}: batch p50 {1000 * p50:.1f} ms, "
                          f"p99 {1000 * p99:.1f} ms, {statistics.median(r['statements'] for r in found):.1f} "
                          f"statements a batch, {rate:,.0f} events/s")
        finally:
            await log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=27)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--consensus", choices=["on", "off"], default="on")
    parser.add_argument("--runs", type=int, default=40, help="runs of the workload (bench/workload.py)")
    parser.add_argument("--docs", type=int, default=50, help="documents per run")
    parser.add_argument("--n", type=int, default=5, help="passes per document")
    parser.add_argument("--live-cache", choices=["on", "off", "both"], default="both",
                        help="the projector's live cache (both: off and on alternately)")
    asyncio.run(main_async(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
