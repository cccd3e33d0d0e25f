"""API latency while the embedded projector scores the worst documents the contract allows.

Run from the repository root:
    .venv/bin/python bench/bench_api_during_scoring.py [--case worst-list] [--documents 3]
        [--py-spy PROFILE.json]

Starts `runledger serve` (embedded default: the projector runs in the API's process),
measures GET /healthz latency sequentially from this process, first idle, then while
the projector folds and scores `--documents` documents of `--case` (bench/bench_consensus.py's
cases: 7 passes each). The fold, consensus and row preparation run in the fold pool's
process (RUNLEDGER_FOLD_PROCESSES), not on the API's event loop; the table shows p50/p99
of both phases and their ratio (the issue's target: p99 within 2x of idle).

`--py-spy` records the server while it scores (py-spy, the bench extra): every thread,
only samples that hold the GIL (what keeps the event loop waiting), as a speedscope file.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_consensus import CASES, N_PASSES  # noqa: E402
from events.catalogue import DocumentPassCompleted  # noqa: E402
from events.codec import encode  # noqa: E402
from events.envelope import new_event  # noqa: E402
from events.log import Message  # noqa: E402
from events.sqlite_log import SqliteEventLog  # noqa: E402
from tests.builders import RunScript  # noqa: E402
from tests.server import free_port  # noqa: E402


def heavy_events(case: str, documents: int) -> list:
    votes = CASES[case]()
    script = RunScript(run_id="run_bench_heavy", docs=documents, n=N_PASSES, block_type="extract")
    events = [script.created()]
    for doc in script.doc_ids:
        for p, output in enumerate(votes):
            events.append(script.event(DocumentPassCompleted(document_id=doc, pass_index=p, output=output,
                                                             duration_ms=1)))
    return events


def sample(client: httpx.Client, until) -> list[float]:
    took = []
    while not until(len(took)):
        started = time.perf_counter()
        client.get("/healthz")
        took.append((time.perf_counter() - started) * 1000)
    return took


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) >= 2 else values[0]


async def append(data_dir: Path, events: list) -> None:
    log = SqliteEventLog(data_dir / "log.db", partitions=6)
    await log.start()
    try:
        await log.append([Message(e.aggregate_id, encode(e)) for e in events])
    finally:
        await log.close()


def projected(data_dir: Path, events: int) -> bool:
    """The read model's checkpoints cover every appended event."""
    with sqlite3.connect(data_dir / "readmodel.db") as db:
        applied = db.execute("SELECT COALESCE(SUM(next_offset), 0) FROM checkpoints WHERE projection = 'main'")
        return applied.fetchone()[0] >= events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", default="worst-list", choices=sorted(CASES))
    parser.add_argument("--documents", type=int, default=3)
    parser.add_argument("--idle-requests", type=int, default=300)
    parser.add_argument("--py-spy", type=Path, metavar="PROFILE", help="record the server while it scores")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir, port = Path(tmp), free_port()
        server = subprocess.Popen([sys.executable, "-m", "services.cli", "serve", "--port", str(port),
                                   "--data-dir", str(data_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                  env={**os.environ, "RUNLEDGER_BOOTSTRAP_KEY": "rl_bench"})
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
                _wait_up(client)
                idle = sample(client, lambda n: n >= args.idle_requests)
                events = heavy_events(args.case, args.documents)
                spy = _py_spy(server.pid, args.py_spy) if args.py_spy else None
                asyncio.run(append(data_dir, events))
                started = time.perf_counter()
                busy = sample(client, lambda n: n >= 20 and n % 10 == 0 and projected(data_dir, len(events)))
                scoring_s = time.perf_counter() - started
                if spy is not None:
                    spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                    spy.wait(60)
        finally:
            server.terminate()
            server.wait(30)
    print(f"case {args.case}: {args.documents} document(s) x {N_PASSES} passes, scored in {scoring_s:.1f} s")
    print(f"{'phase':<10}{'requests':>10}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for name, took in (("idle", idle), ("scoring", busy)):
        print(f"{name:<10}{len(took):>10}{percentile(took, 50):>10.2f}{percentile(took, 99):>10.2f}{max(took):>10.2f}")
    print(f"p99 ratio scoring/idle: {percentile(busy, 99) / percentile(idle, 99):.2f}")


def _py_spy(pid: int, output: Path) -> subprocess.Popen:
    py_spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen([str(py_spy), "record", "--pid", str(pid), "--threads", "--gil", "--rate", "100",
                             "--format", "speedscope", "-o", str(output)], stdout=subprocess.DEVNULL)


def _wait_up(client: httpx.Client, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.get("/healthz").status_code in (200, 503):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("runledger serve did not come up")


if __name__ == "__main__":
    main()
