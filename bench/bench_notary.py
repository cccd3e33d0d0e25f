"""What tamper evidence costs (issue 19): the proof bundle of a 2,000 documents x 7 passes
run (bytes, time to export, time to check offline), and the projector's CPU per event with
the Merkle tree on and off, side by side in the same sitting (medians of --repeat runs,
interleaved, embedded default; the fold in a thread of the process, so the process's CPU
time is the projector's whole CPU).

    .venv/bin/python -m bench.bench_notary [--docs 2000 --n 7] [--repeat 5] [--quick]

Also a row group of `make bench` (bench/run.py; `--skip notary` leaves it out).
"""
from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import orjson

from events.catalogue import DocumentPassCompleted
from events.codec import encode
from events.log import Message
from events.sqlite_log import SqliteEventLog
from projections.notary import bundle as bundle_module, proofs, storage, tiles
from projections.notary.heads import Signer
from projections.runtime.projector import BATCH_SIZE, Projector
from projections.store.database import make_engine, prepare_schema
from tests.builders import RunScript

from .projection import _timed_run, consensus
from .table import Figure, Row
from .workload import Workload, invoice

PARTITIONS = 6
SMALL_POLLS = 100  # records per poll: each partition's batch ~17, the live path's size
ROOT = Path(__file__).resolve().parents[1]


def say(message: str) -> None:
    print(f"[bench_notary {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the proof bundle of one big run -------------------------------------------------------

def big_run(docs: int, n: int, seed: int = 7) -> list[Message]:
    rng = random.Random(seed)
    script = RunScript(run_id="run_big", docs=docs, n=n, block_type="extract")
    events = [script.created(), script.queued(), script.started()]
    passes = [script.event(DocumentPassCompleted(document_id=doc, pass_index=i, output=invoice(rng, d),
                                                 duration_ms=100)) for d, doc in enumerate(script.doc_ids)
              for i in range(n)]
    rng.shuffle(passes)
    others = Workload(runs=10, docs=20, n=3, prefix="other").events  # other runs share the log
    return [Message(e.aggregate_id, encode(e)) for e in others[:2] + events + passes + others[2:]]


async def bundle_figures(docs: int, n: int, repeat: int, workdir: Path) -> dict:
    log = SqliteEventLog(workdir / "log.db", partitions=PARTITIONS)
    await log.start()
    url = f"sqlite+aiosqlite:///{workdir / 'readmodel.db'}"
    engine = make_engine(url)
    await prepare_schema(url, engine)
    signer = Signer.generate()
    try:
        messages = big_run(docs, n)
        await log.append(messages)
        projector = Projector(log, engine)
        with consensus(False):
            await _timed_run(projector, len(messages), "bench-notary", None)
        exports, export_cpu, body = [], [], b""
        for _ in range(repeat):
            started, cpu = time.perf_counter(), time.process_time()
            async with engine.connect() as conn:
                document = await proofs.run_bundle(conn, log, signer, "run_big", "org_a")
            body = orjson.dumps(document)
            exports.append(time.perf_counter() - started)
            export_cpu.append(time.process_time() - cpu)
        async with engine.connect() as conn:
            size = (await storage.trees(conn))[document["records"][0]["partition"]].size
    finally:
        await engine.dispose()
        await log.close()
    checks = []
    for _ in range(repeat):
        started = time.process_time()
        outcome = bundle_module.check(orjson.loads(body), public_key=signer.public_key)
        checks.append(time.process_time() - started)
        assert outcome.ok and outcome.records == docs * n + 3, outcome.failure
    path = workdir / "bundle.json"
    path.write_bytes(body)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "services.cli", "audit", "check", str(path)], cwd=ROOT,
                          capture_output=True, text=True)
    cli = time.perf_counter() - started
    assert done.returncode == 0, done.stdout + done.stderr
    per_record = sum(len(r["proof"]) for r in document["records"]) / len(document["records"])
    return {"records": len(document["records"]), "bytes": len(body), "tree": size, "hashes": len(document["hashes"]),
            "path": per_record, "export": statistics.median(exports), "export_cpu": statistics.median(export_cpu),
            "check": statistics.median(checks), "cli": cli}


# -- the projector's CPU, tree on and off --------------------------------------------------

class Spent:
    """CPU seconds inside the tree's own code during a tree-on run: loading the tail, growing
    it (in the fold's thread: that thread's CPU), saving it (the loop's and the driver's)."""

    seconds = 0.0


@contextmanager
def tree(on: bool):
    real_tail, real_save, real_grow = storage.tail, storage.save, tiles.Tail.grow

    async def no_tree(conn, partition, expected):
        return None

    async def timed_tail(conn, partition, expected):
        started = time.process_time()
        try:
            return await real_tail(conn, partition, expected)
        finally:
            Spent.seconds += time.process_time() - started

    async def timed_save(conn, tail):
        started = time.process_time()
        try:
            return await real_save(conn, tail)
        finally:
            Spent.seconds += time.process_time() - started

    def timed_grow(self, records):
        started = time.thread_time()
        try:
            return real_grow(self, records)
        finally:
            Spent.seconds += time.thread_time() - started

    storage.tail, storage.save, tiles.Tail.grow = (timed_tail, timed_save, timed_grow) if on else (no_tree, real_save,
                                                                                                   real_grow)
    try:
        yield
    finally:
        storage.tail, storage.save, tiles.Tail.grow = real_tail, real_save, real_grow


async def projector_cpu(workload: Workload, consensus_on: bool, tree_on: bool, batch_size: int = BATCH_SIZE):
    """Process CPU seconds per event of one projector catching up on the workload."""
    with tempfile.TemporaryDirectory(prefix="rl-bench-notary-") as tmp:
        log = SqliteEventLog(Path(tmp) / "log.db", partitions=PARTITIONS)
        await log.start()
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'readmodel.db'}"
        engine = make_engine(url)
        await prepare_schema(url, engine)
        try:
            await log.append(workload.messages)
            projector = Projector(log, engine, batch_size=batch_size)
            Spent.seconds = 0.0
            with consensus(consensus_on), tree(tree_on):
                before = time.process_time()
                await _timed_run(projector, len(workload), "bench", None)
                spent = time.process_time() - before
            async with engine.connect() as conn:
                trees = await storage.trees(conn)
            assert bool(trees) == tree_on and (not tree_on or sum(t.size for t in trees.values()) == len(workload))
            return spent / len(workload), Spent.seconds / spent
        finally:
            await engine.dispose()
            await log.close()


async def cpu_figures(workload: Workload, repeat: int, consensus_on: bool, batch_size: int = BATCH_SIZE):
    """(CPU per event with the tree, without it, the tree's own share of each tree-on run)."""
    on, off, inside = [], [], []
    for i in range(repeat):
        for tree_on in (True, False) if i % 2 == 0 else (False, True):
            per_event, share = await projector_cpu(workload, consensus_on, tree_on, batch_size)
            (on if tree_on else off).append(per_event)
            if tree_on:
                inside.append(share)
        say(f"consensus {'on' if consensus_on else 'off'}, polls of {batch_size} rep {i + 1}: tree on {on[-1] * 1e6:.1f} us, "
            f"off {off[-1] * 1e6:.1f} us CPU per event; inside the tree's code {inside[-1]:.1%}")
    return on, off, inside


async def rows(docs: int, n: int, repeat: int, workload: Workload, say_=say) -> list[Row]:
    global say
    say = say_
    with tempfile.TemporaryDirectory(prefix="rl-bench-notary-") as tmp:
        b = await bundle_figures(docs, n, repeat, Path(tmp))
    say(f"bundle: {b}")
    out = [
        Row(f"notary: proof bundle of a {docs:,} documents x {n} passes run ({b['records']:,} records, "
            f"partition of {b['tree']:,})", Figure("MB", [b["bytes"] / 1e6],
                                                   note=f"{b['hashes']:,} distinct hashes, {b['path']:.1f} per "
                                                        f"record's path; exported in {b['export']:.2f} s, "
                                                        f"{b['export_cpu']:.2f} s CPU")),
        Row("notary: `audit check` of that bundle, offline", Figure("s CPU", [b["check"]],
                                                                    note=f"CLI, process start included: {b['cli']:.2f} s")),
    ]
    for consensus_on, batch_size in ((False, BATCH_SIZE), (True, BATCH_SIZE), (False, SMALL_POLLS)):
        on, off, inside = await cpu_figures(workload, repeat, consensus_on, batch_size)
        share = (statistics.median(on) - statistics.median(off)) / statistics.median(on)
        label = f"consensus {'on' if consensus_on else 'off'}" + (
            f", polls of {batch_size} records (batches of ~{batch_size // PARTITIONS}, as on a live log)"
            if batch_size != BATCH_SIZE else "")
        note = (f"tree = {share:.1%} of the projector's CPU by on - off; {statistics.median(inside):.1%} "
                f"measured inside its code")
        out.append(Row(f"notary: projector CPU per event with the Merkle tree, {label} "
                       f"(embedded, {len(workload):,} events)", Figure("us CPU", [v * 1e6 for v in on], note=note),
                       "same, tree off", Figure("us CPU", [v * 1e6 for v in off]), ratio_note="lower is better"))
    return out


def main(argv: list[str] | None = None) -> int:
    from .table import markdown

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--n", type=int, default=7, choices=[3, 5, 7])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="200 documents, 2 repetitions, a small workload")
    args = parser.parse_args(argv)
    workload = Workload()
    if args.quick:
        args.docs, args.repeat, workload = 200, 2, Workload(runs=8, docs=10, n=5)
    print(markdown(asyncio.run(rows(args.docs, args.n, args.repeat, workload))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
