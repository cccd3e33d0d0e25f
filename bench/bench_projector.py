"""Projector throughput: events/s from the log into the read model, metrics on vs off.

    python bench/bench_projector.py [--runs 20] [--docs 25] [--n 5] [--batch-size 500]
    python bench/bench_projector.py --stages [--runs 40 --docs 50]   # CPU per event, by stage

Appends every event first, then times one projector catching up from offset 0.
"Metrics off" swaps the consensus call for a constant, to show what scoring costs.
`--stages` (metrics off) drives a batch's steps by hand instead (decode, load, fold,
prepare, save into SQLite, batches of --batch-size) and prints the process CPU time of
each per event: CPU, not wall, so a busy shared machine blurs it less.
Not a test: figures go to docs/benchmarks.md by hand.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.workload import invoice  # noqa: E402
from events.catalogue import DocumentPassCompleted  # noqa: E402
from events.codec import encode  # noqa: E402
from events.log import Message  # noqa: E402
from events.sqlite_log import SqliteEventLog  # noqa: E402
from projections.domain import fold  # noqa: E402
from projections.runtime.projector import Projector  # noqa: E402
from projections.store.database import create_schema, make_engine  # noqa: E402
from tests.builders import RunScript  # noqa: E402


def build_events(runs: int, docs: int, n: int, seed: int = 7) -> list:
    rng = random.Random(seed)
    events = []
    for r in range(runs):
        script = RunScript(run_id=f"run_{r}", docs=docs, n=n, block_type="extract")
        events += [script.created(), script.queued(), script.started()]
        for d, doc in enumerate(script.doc_ids):
            for i in range(n):
                events.append(script.event(DocumentPassCompleted(
                    document_id=doc, pass_index=i, output=invoice(rng, d), duration_ms=100)))
    rng.shuffle(events[3:])  # keep each run's creation first; passes arrive in any order
    return events


async def measure(events: list, workdir: Path, batch_size: int) -> float:
    log = SqliteEventLog(workdir / "log.db")
    await log.start()
    await log.append([Message(e.aggregate_id, encode(e)) for e in events])
    ends = await log.end_offsets()
    engine = make_engine(f"sqlite+aiosqlite:///{workdir / 'readmodel.db'}")
    await create_schema(engine)
    projector = Projector(log, engine, batch_size=batch_size)
    started = time.perf_counter()
    task = asyncio.create_task(projector.run())
    while projector.applied_total < len(events):
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    projector.stop()
    await task
    assert sum(ends.values()) == projector.applied_total
    await engine.dispose()
    await log.close()
    return elapsed


async def stages(events: list, workdir: Path, batch_size: int) -> dict[str, float]:
    """CPU seconds per stage of the batches that project `events` (one partition)."""
    from events.log import Record
    from projections.runtime.batch import Batch, load, save

    now_ms = int(time.time() * 1000)  # append times: the events' own stamps stay within the clock's bounds
    records = [Record(0, i, e.aggregate_id, encode(e), now_ms + i) for i, e in enumerate(events)]
    engine = make_engine(f"sqlite+aiosqlite:///{workdir / 'readmodel.db'}")
    await create_schema(engine)
    spent = dict.fromkeys(("decode", "load", "fold", "prepare", "save"), 0.0)
    for start in range(0, len(records), batch_size):
        batch = Batch("main", records[start:start + batch_size])
        marks = [time.process_time()]
        batch.decode_all()
        marks.append(time.process_time())
        async with engine.connect() as conn:
            await load(conn, batch)
        marks.append(time.process_time())
        batch.fold()
        marks.append(time.process_time())
        if hasattr(batch, "prepare"):  # before e6912b1 the save prepared its rows itself
            batch.prepare()
        marks.append(time.process_time())
        async with engine.begin() as conn:
            await save(conn, batch)
        marks.append(time.process_time())
        for stage, before, after in zip(spent, marks, marks[1:]):
            spent[stage] += after - before
    await engine.dispose()
    return spent


def print_stages(events: list, batch_size: int) -> None:
    fold.score_document = lambda spec, votes: (1.0, {"targets": []})
    with tempfile.TemporaryDirectory() as tmp:
        spent = asyncio.run(stages(events, Path(tmp), batch_size))
    n, total = len(events), sum(spent.values())
    shares = ", ".join(f"{stage} {seconds * 1e6 / n:.1f} ({seconds / total:.0%})" for stage, seconds in spent.items())
    print(f"metrics off, CPU per event: {total * 1e6 / n:.1f} us = {n / total:,.0f} events per CPU-second; "
          f"by stage, us: {shares}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--docs", type=int, default=25)
    parser.add_argument("--n", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--stages", action="store_true", help="CPU per event by stage (metrics off), no projector loop")
    args = parser.parse_args()
    events = build_events(args.runs, args.docs, args.n)
    if args.stages:
        print_stages(events, args.batch_size)
        return
    real = fold.score_document
    for label, scorer in (("metrics on", real), ("metrics off", lambda spec, votes: (1.0, {"targets": []}))):
        fold.score_document = scorer
        with tempfile.TemporaryDirectory() as tmp:
            elapsed = asyncio.run(measure(events, Path(tmp), args.batch_size))
        print(f"{label:12s} {len(events):6d} events in {elapsed:6.2f} s = {len(events) / elapsed:8.0f} events/s")
    fold.score_document = real


if __name__ == "__main__":
    main()
