"""Rebuild rate and memory: `runledger rebuild`'s replay of a generated embedded log.

    python bench/bench_rebuild.py [--events 1000000] [--keep DIR] [--jobs N] [--postgres] [--consensus off]
    python bench/bench_rebuild.py --quick          # 20,000 events

Writes a log of about `--events` events (runs of 50 documents x 3 passes of a small
invoice extraction, 20 % of passes disagreeing, a run's passes interleaved with its
neighbours'), then runs the rebuild (projections.runtime.rebuild, consensus on, as in
production; `--jobs N` as `runledger rebuild --jobs N`) in a fresh process and reports
events/s and peak RSS (of the rebuild's process, and of its largest job process with
`--jobs`), with the rebuild process's RSS sampled along the way. The read model is SQLite
beside the log, or with `--postgres` a fresh database on a PostgreSQL server started for
the run (scripts/postgres.sh; `--database-url` for one already running). The last line is
the summary bench/run.py shows. Not a test.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.workload import invoice, setup_events  # noqa: E402
from events.catalogue import DocumentPassCompleted  # noqa: E402
from events.codec import encode  # noqa: E402
from events.log import Message  # noqa: E402
from tests.builders import RunScript  # noqa: E402

DOCS, N, WINDOW = 50, 3, 8  # documents per run, passes per document, runs interleaved at once


async def generate(data_dir: Path, events: int) -> int:
    """Append about `events` events, WINDOW runs at a time, never holding more in memory."""
    from events.sqlite_log import SqliteEventLog

    log = SqliteEventLog(data_dir / "log.db", partitions=6)
    await log.start()
    rng, written, per_run = random.Random(7), 0, DOCS * N + 3
    try:
        setup = setup_events()
        await log.append([Message(e.aggregate_id, encode(e)) for e in setup])
        written += len(setup)
        run = 0
        while written + per_run <= events:
            window = []
            for _ in range(min(WINDOW, (events - written) // per_run)):
                window.append(_run_events(rng, f"run_{run}"))
                run += 1
            lifecycle = [e for evs in window for e in evs[:3]]
            passes = [e for evs in window for e in evs[3:]]
            rng.shuffle(passes)
            for chunk in (lifecycle, passes):
                await log.append([Message(e.aggregate_id, encode(e)) for e in chunk])
            written += len(lifecycle) + len(passes)
    finally:
        await log.close()
    return written


def _run_events(rng: random.Random, run_id: str) -> list:
    script = RunScript(run_id=run_id, docs=DOCS, n=N, block_type="extract")
    events = [script.created(), script.queued(), script.started()]
    for d, doc in enumerate(script.doc_ids):
        events += [script.event(DocumentPassCompleted(document_id=doc, pass_index=i, output=invoice(rng, d),
                                                      duration_ms=100)) for i in range(N)]
    return events


def open_log(data_dir: Path, consensus: bool = True):
    """The log; in a job's process too, where consensus off is set up as well."""
    from events.sqlite_log import SqliteEventLog
    from projections.domain import fold

    if not consensus:
        fold.score_document = constant_scorer
    return SqliteEventLog(data_dir / "log.db", partitions=6)


async def measure(data_dir: Path, jobs: int, database_url: str | None, consensus: bool) -> dict:
    """In its own process: the rebuild of `data_dir`'s log into read-model version 2."""
    import functools

    from projections.runtime import rebuild
    from projections.store import control
    from projections.store.database import make_engine, prepare_schema

    base_url = database_url or f"sqlite+aiosqlite:///{data_dir / 'readmodel.db'}"
    control_url = database_url or f"sqlite+aiosqlite:///{data_dir / 'control.db'}"
    base, ctrl = make_engine(base_url), make_engine(control_url)
    await prepare_schema(base_url, base)
    await control.create_control_schema(ctrl)
    log = open_log(data_dir, consensus)
    await log.start()
    samples: list[tuple[int, float]] = []

    def sample(progress) -> None:
        if not samples or progress.done_events - samples[-1][0] >= max(1, progress.total_events // 10):
            samples.append((progress.done_events, _rss_mb()))

    started, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = before.ru_utime + before.ru_stime
    try:
        progress = await rebuild.rebuild(log, ctrl, base_url, report=sample, linger=0.0, jobs=jobs,
                                         open_log=functools.partial(open_log, data_dir, consensus))
    finally:
        await log.close()
        await base.dispose()
        await ctrl.dispose()
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the jobs (waited for)
    cpu = usage.ru_utime + usage.ru_stime - cpu_before + children.ru_utime + children.ru_stime
    return {"events": progress.done_events, "seconds": round(seconds, 1), "jobs": jobs,
            "events_per_second": round(progress.done_events / seconds), "peak_rss_mb": round(usage.ru_maxrss / 1024),
            "job_peak_rss_mb": round(children.ru_maxrss / 1024) if jobs > 1 else None,
            "cpu_seconds": round(cpu, 1), "events_per_cpu_second": round(progress.done_events / cpu),
            "rss_mb_along_the_way": [[n, round(mb)] for n, mb in samples]}


def constant_scorer(spec, votes):
    """Consensus off (module level: the jobs' processes unpickle it)."""
    return 1.0, {"targets": []}


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="20,000 events")
    parser.add_argument("--keep", type=Path, help="generate into (or reuse) this directory")
    parser.add_argument("--jobs", type=int, default=1, help="runledger rebuild --jobs N")
    parser.add_argument("--postgres", action="store_true", help="the read model on a PostgreSQL server started here")
    parser.add_argument("--database-url", help="the read model in this (empty) PostgreSQL database")
    parser.add_argument("--consensus", choices=["on", "off"], default="on")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(asyncio.run(measure(args.measure, args.jobs, args.database_url, args.consensus == "on"))))
        return 0
    events = 20_000 if args.quick else args.events
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as servers:
        data_dir = args.keep or Path(tmp)
        data_dir.mkdir(parents=True, exist_ok=True)
        if not (data_dir / "log.db").exists():
            started = time.perf_counter()
            written = asyncio.run(generate(data_dir, events))
            print(f"generated {written:,} events in {time.perf_counter() - started:.0f} s", flush=True)
        url = args.database_url
        if args.postgres and not url:
            from bench.infra import Infra
            from tests.infra import postgres_server

            server = servers.enter_context(postgres_server(Path(tmp) / "pg"))
            url = asyncio.run(Infra("", server).new_database("rebuild"))
        command = [sys.executable, __file__, "--measure", str(data_dir), "--jobs", str(args.jobs),
                   "--consensus", args.consensus, *(["--database-url", url] if url else [])]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr[-2000:], file=sys.stderr)
            return done.returncode
        result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"RSS (MB) along the replay, [events, MB]: {result['rss_mb_along_the_way']}")
    store = "PostgreSQL" if url else "SQLite"
    jobs = f", {args.jobs} jobs (largest job's peak RSS {result['job_peak_rss_mb']} MB)" if args.jobs > 1 else ""
    print(f"rebuild into {store}, consensus {args.consensus}{jobs}: {result['events']:,} events in "
          f"{result['seconds']} s = {result['events_per_second']:,} events/s ({result['events_per_cpu_second']:,} "
          f"per CPU-second), peak RSS {result['peak_rss_mb']} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
