"""Profiles behind the table: what bounds the projector and the GET run endpoint.

    .venv/bin/python -m bench.profile [--quick] [--out DIR]

- projector Kafka -> PostgreSQL, consensus off and on: pyinstrument around the catch-up
  (`DIR/projector-{off,on}.txt`);
- `GET /v1/workflows/experiments/runs/{id}` under wrk: py-spy sampling the
  `runledger serve` process (`DIR/get-run.folded`, flame-graph input), summarised.

Each summary prints the functions with the largest share of samples (inclusive), which
is what docs/benchmarks.md quotes.
"""
from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

import httpx

from events.kafka_log import KafkaEventLog

from . import servers, wrk
from .http_rows import endpoints
from .infra import servers as infra_servers
from .projection import catch_up
from .run import say
from .workload import Workload

TOPIC = "bench.profile"


async def projector(infra, workload: Workload, out: Path) -> None:
    from pyinstrument import Profiler

    log = KafkaEventLog(infra.kafka, topic=TOPIC)
    await log.start()
    try:
        await log.append(workload.messages)
        for label, on in (("off", False), ("on", True)):
            profiler = Profiler(interval=0.002, async_mode="disabled")  # all of the loop, idle included
            url = await infra.new_database(f"profile_{label}")
            seconds = await catch_up(log, url, len(workload), consensus_on=on, group=f"profile-{label}",
                                     profiler=profiler)
            text = profiler.output_text(unicode=False, color=False, show_all=False)
            (out / f"projector-{label}.txt").write_text(text)
            say(f"projector consensus {label}: {len(workload) / seconds:,.0f} events/s under the profiler; "
                f"{out / f'projector-{label}.txt'}")
            cpu = CpuProfile()
            url = await infra.new_database(f"profile_cpu_{label}")
            await catch_up(log, url, len(workload), consensus_on=on, group=f"profile-cpu-{label}", profiler=cpu)
            (out / f"projector-{label}-cpu.txt").write_text(cpu.summary(len(workload)))
            say(f"projector consensus {label}, CPU by stage: {out / f'projector-{label}-cpu.txt'}")
    finally:
        await log.close()


class CpuProfile:
    """Where the projector's CPU goes, by stage: py-spy sampling this whole process (every
    thread: decode and fold run in worker threads, which cProfile would not see) while the
    catch-up runs, idle threads left out, each sample counted under the first stage its
    stack shows. Shares of the samples, and CPU-us per event from the process's CPU time."""

    STAGES = [  # (label, a frame that marks it), first match wins
        ("consensus (score_document)", "score_document ("),
        ("decode: compiled schema (compiled.from_parsed)", "from_parsed ("),
        ("decode: the models (codec.from_dict)", "from_dict ("),
        ("decode: orjson, the byte checks (decode_all)", "Batch.decode_all ("),
        ("fold: the event index rows (_index_row)", "_index_row ("),
        ("fold (Batch.fold)", "Batch.fold ("),
        ("prepare rows: JSON encode (Batch.prepare)", "Batch.prepare ("),
        ("load: state JSON decode (database._loads)", "_loads (projections/store/database.py"),
        ("load: statements (batch.load)", "load (projections/runtime/batch.py"),
        ("write: checkpoint (checkpoints.advance)", "advance (projections/runtime/checkpoints.py"),
        ("write: rows, COPY (bulk_writes)", "bulk_writes.py"),
        ("write: statements (batch.save)", "save (projections/runtime/batch.py"),
        ("SQLAlchemy + asyncpg outside those", "sqlalchemy/"),
        ("Kafka consumer (aiokafka, Record)", "aiokafka/"),
        ("Kafka consumer (aiokafka, Record)", "KafkaConsumer.poll ("),
    ]
    REST = "event loop, sockets, the rest"

    def __init__(self) -> None:
        self._folded = Path(tempfile.mkstemp(suffix=".folded")[1])
        self._spy: subprocess.Popen | None = None
        self._cpu = 0.0

    def start(self) -> None:
        import os
        import time

        self._spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
                                      str(os.getpid()), "--rate", "250", "--format", "raw", "--nonblocking",
                                      "--output", str(self._folded)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # attached before the clock starts
        self._cpu = -time.process_time()

    def stop(self) -> None:
        import signal
        import time

        self._cpu += time.process_time()
        self._spy.send_signal(signal.SIGINT)  # py-spy writes what it sampled, then exits
        self._spy.wait(60)

    def summary(self, events: int) -> str:
        shares: Counter[str] = Counter()
        total = 0
        for line in self._folded.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack:
                continue
            n = int(count)
            total += n
            shares[next((label for label, frame in self.STAGES if frame in stack), self.REST)] += n
        per_event = 1e6 * self._cpu / events
        lines = [f"{events:,} events; this process's CPU: {self._cpu:.2f} s = {per_event:.0f} us per event; "
                 f"{total} py-spy samples (250 Hz, every thread, idle left out), by stage:"]
        for label in dict.fromkeys([label for label, _ in self.STAGES] + [self.REST]):
            share = shares[label] / total if total else 0.0
            lines.append(f"{label:44s} {100 * share:5.1f} %  ~{share * per_event:5.0f} us/event")
        return "\n".join(lines)


async def get_run(infra, workload: Workload, out: Path, seconds: float) -> None:
    log = KafkaEventLog(infra.kafka, topic=TOPIC)
    await log.start()
    await log.close()
    with tempfile.TemporaryDirectory(prefix="rl-profile-") as tmp:
        async with servers.runledger(infra, TOPIC, Path(tmp)) as (server, key, admin):
            async with httpx.AsyncClient(base_url=server.url, headers={"Api-Key": key}, timeout=60) as client:
                await servers.caught_up(client, admin)
            url = server.url + endpoints(workload.run_ids[0])["GET run"]
            for kind, flags in (("wall", []), ("gil", ["--gil"])):  # every sample / only Python on the CPU
                load = threading.Thread(target=wrk.run, args=(url, seconds + 2, {"Api-Key": key}))
                load.start()
                folded = out / f"get-run-{kind}.folded"
                py_spy(server.proc.pid, int(seconds), folded, rate=250, gil=bool(flags))
                load.join()
                (out / f"get-run-{kind}.txt").write_text(summarise(folded))
                say(f"GET run under wrk, py-spy {kind}: {out / f'get-run-{kind}.txt'}")


def py_spy(pid: int, seconds: int, folded: Path, rate: int = 200, gil: bool = False) -> None:
    """py-spy record of a running process into `folded` (raw stacks), without pausing it;
    `gil`: only samples where Python holds the GIL (on the CPU)."""
    subprocess.run([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid),
                    "--duration", str(seconds), "--rate", str(rate), "--format", "raw", "--nonblocking",
                    *(["--gil"] if gil else []), "--output", str(folded)], check=True, capture_output=True)


def server_profiler_main(prog: str, profile, default_seconds: int) -> None:
    """The command line of a server profiler (bench.profile_reads, bench.profile_ingest):
    `--out DIR` (default: runledger-profiles/<name> in the temporary directory) and
    `--seconds N`; then `profile(out, seconds)`."""
    parser = argparse.ArgumentParser(prog=prog)
    name = prog.rsplit("_", 1)[-1]
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "runledger-profiles" / name)
    parser.add_argument("--seconds", type=int, default=default_seconds)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    asyncio.run(profile(args.out, args.seconds))


def summarise(folded: Path, top: int = 40) -> str:
    """Share of samples per function: inclusive (counted once per stack) and self (leaf)."""
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        n = int(count)
        total += n
        for frame in set(frames):
            inclusive[frame] += n
        leaf[frames[-1]] += n
    lines = [f"{total} samples; inclusive share per function:"]
    lines += [f"{100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(top)]
    lines += ["", "self (leaf) share:"]
    lines += [f"{100 * n / total:5.1f}%  {frame}" for frame, n in leaf.most_common(top // 2)]
    return "\n".join(lines)


async def main_async(args) -> None:
    workload = Workload(8, 10, 5) if args.quick else Workload()
    with tempfile.TemporaryDirectory(prefix="rl-profile-") as tmp:
        with infra_servers(Path(tmp)) as infra:
            await projector(infra, workload, args.out)
            if not args.projector_only:
                await get_run(infra, workload, args.out, 3 if args.quick else 10)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.profile")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--projector-only", action="store_true", help="the projector's profiles, not GET run's")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "runledger-profiles")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
