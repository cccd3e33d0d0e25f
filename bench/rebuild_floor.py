"""The floor under any rebuild of this read model: what is left when the fold is taken away.

    .venv/bin/python bench/rebuild_floor.py --log DIR [--repeat 3]

DIR holds a log written by `bench/bench_rebuild.py --keep DIR`. Each repetition, in one
process, reads every record of the log in chunks of 10,000 (`SqliteEventLog.read`), decodes
each (`events.codec.decode`: the validated `Event` every projector needs), builds the one row
every event leaves in the read model whatever the fold does (the event index row: its
columns and its body written back as JSON, as the projector writes it) and copies the rows
into a fresh `event_index` (the project's schema, its indexes included) on a PostgreSQL
server started here, with one binary COPY per chunk and one commit per chunk, as a bulk flush
does, with the garbage collector paused as a catch-up pauses it. No fold, no consensus, no aggregate row, no history snapshot, no notary tile.

It prints, per step, the CPU time of this process per event and, for the whole, events per
second of wall time and per CPU-second (this process and the server's backends together):
the rate a rebuild cannot pass on this machine while it writes one index row per event from
one Python process, however lean its fold. Not a test.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import procstat  # noqa: E402
from events.codec import decode  # noqa: E402
from events.envelope import Event  # noqa: E402

CHUNK = 10_000
_EVENT_JSON = Event.__pydantic_serializer__.to_json
COLUMNS = ["partition", "offset", "event_id", "aggregate_id", "org_id", "type", "occurred_at", "producer",
           "accepted", "body", "document_id"]


def _postmaster(pg_dir: Path) -> int | None:
    pgdata = Path((pg_dir / "pgdata").read_text().strip()) if (pg_dir / "pgdata").exists() else pg_dir / "data"
    pid_file = pgdata / "postmaster.pid"
    return int(pid_file.read_text().split()[0]) if pid_file.exists() else None


async def one_pass(log_dir: Path, url: str, body: bool = True) -> dict:
    import asyncpg

    from events.sqlite_log import SqliteEventLog

    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    await conn.execute("TRUNCATE event_index")
    log = SqliteEventLog(log_dir / "log.db", partitions=6)
    await log.start()
    gc.disable()  # as a bulk catch-up runs (projections/runtime/bulk.py): collections walk every object kept
    steps = {"read": 0.0, "decode": 0.0, "rows": 0.0, "copy": 0.0}
    events = 0
    started, cpu0 = time.perf_counter(), time.process_time()
    try:
        for partition in range(log.partitions):
            offset = 0
            while True:
                t = time.process_time()
                records = await log.read(partition, offset, CHUNK)
                steps["read"] += time.process_time() - t
                if not records:
                    break
                t = time.process_time()
                decoded = [(r, decode(r.value)) for r in records]
                steps["decode"] += time.process_time() - t
                t = time.process_time()
                rows = [(r.partition, r.offset, str(e.event_id), e.aggregate_id, e.org_id, e.type, e.occurred_at,
                         e.producer, True, _EVENT_JSON(e).decode() if body else None, getattr(e.payload, "document_id", None))
                        for r, e in decoded]
                steps["rows"] += time.process_time() - t
                t = time.process_time()
                async with conn.transaction():
                    await conn.copy_records_to_table("event_index", records=rows, columns=COLUMNS)
                steps["copy"] += time.process_time() - t
                events += len(records)
                offset = records[-1].offset + 1
    finally:
        gc.enable()
        await log.close()
        await conn.close()
    return {"events": events, "wall": time.perf_counter() - started, "cpu": time.process_time() - cpu0,
            "steps": steps}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log", type=Path, required=True, help="a directory from bench_rebuild.py --keep")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-body", action="store_true",
                        help="index rows without their JSON body (readers would fetch it from the log)")
    args = parser.parse_args()
    from bench.infra import Infra
    from projections.store.database import make_engine, prepare_schema
    from tests.infra import postgres_server

    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        server = stack.enter_context(postgres_server(Path(tmp) / "pg"))
        url = asyncio.run(Infra("", server).new_database("floor"))

        async def schema() -> None:
            engine = make_engine(url)
            await prepare_schema(url, engine)
            await engine.dispose()

        asyncio.run(schema())
        pid = _postmaster(Path(tmp) / "pg")
        results = []
        for _ in range(args.repeat):
            server_before = procstat.cpu_seconds(pid, reaped=True) if pid else 0.0
            result = asyncio.run(one_pass(args.log, url, body=not args.no_body))
            result["server_cpu"] = (procstat.cpu_seconds(pid, reaped=True) - server_before) if pid else float("nan")
            results.append(result)
            n = result["events"]
            per = {k: f"{1e6 * v / n:.1f}" for k, v in result["steps"].items()}
            print(f"{n:,} events: {n / result['wall']:,.0f} events/s wall; this process {1e6 * result['cpu'] / n:.1f} "
                  f"us/event (read {per['read']}, decode {per['decode']}, rows {per['rows']}, copy {per['copy']}); "
                  f"server {1e6 * result['server_cpu'] / n:.1f} us/event", flush=True)
    rates = [r["events"] / r["wall"] for r in results]
    per_cpu = [r["events"] / (r["cpu"] + r["server_cpu"]) for r in results]
    print(f"floor: median {statistics.median(rates):,.0f} events/s wall, "
          f"{statistics.median(per_cpu):,.0f} events per CPU-second (process + server), {len(results)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
