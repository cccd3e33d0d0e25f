"""Two projector processes against one (issue 11 point 3): catch-up of bench/workload.py's
workload on a 6-partition log into a fresh read model, by 1 and by 2 `runledger project`
processes in one consumer group; events/s, medians of `--repeat`, consensus off and on.

    .venv/bin/python -m bench.bench_scale              # Kafka -> PostgreSQL and the embedded log
    .venv/bin/python -m bench.bench_scale --embedded-only --runs 8 --docs 10 --repeat 1

The members start on an empty log and wait until the group is stable (every member holds
partitions, together all 6: process start-up and rebalances are left out); then the
workload is appended (the members project while it arrives), and the rate is that of the
backlog left when the append ends: events applied from then until the read model's event
index holds every event, over that time.

Each member is one process (RUNLEDGER_FOLD_PROCESSES=0: folds in a worker thread, no fold
pool), so "2 processes" is two members and never more. "Consensus off" runs the members
through `member` below, which swaps the scorer for a constant (bench/projection.py).
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from events.kafka_log import KafkaEventLog
from events.sqlite_log import SqliteEventLog
from projections.store.database import make_engine, prepare_schema
from projections.store.tables import event_index, runs

from . import procstat
from .projection import CONSTANT_SCORE
from .table import Figure, Row
from .workload import Workload

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 6
CLAIMS = re.compile(r"(assigned|released) partitions \[([\d, ]*)\]")
_serial = itertools.count(1)


class Member:
    """One `runledger project` process of the group, its log in a file."""

    def __init__(self, directory: Path, name: str, env: dict[str, str], group: str, consensus_on: bool):
        self.log_path = directory / f"{name}.log"
        self._log = open(self.log_path, "wb")
        command = [sys.executable, "-m", "bench.bench_scale", "member", "--group", group,
                   "--consensus", "on" if consensus_on else "off"]
        self.proc = subprocess.Popen(command, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **env, "RUNLEDGER_FOLD_PROCESSES": "0"})

    def held(self) -> set[int]:
        """The partitions this member holds now, by its log's assigned/released lines."""
        held: set[int] = set()
        for verb, listed in CLAIMS.findall(self.log_path.read_text(errors="replace")):
            partitions = {int(p) for p in listed.split(",") if p.strip()}
            held = held | partitions if verb == "assigned" else held - partitions
        return held

    def joining(self) -> bool:
        """Started: its runtime (log, read model, control store) is open."""
        return "projector joining group" in self.log_path.read_text(errors="replace")

    def cpu_seconds(self) -> float:
        """User + system CPU this process has used so far (proc(5) stat, Linux)."""
        return procstat.cpu_seconds(self.proc.pid, descendants=False)

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.log_path.stem} exited with {self.proc.returncode}:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@dataclass
class CatchUp:
    rate: float  # events/s of the backlog left when the append ended
    per_cpu_second: float  # the same events per CPU-second the members used meanwhile
    during: int  # events applied while the append ran (not counted)


async def catch_up(env: dict[str, str], url: str, fill, expected: int, processes: int, consensus_on: bool,
                   directory: Path) -> CatchUp:
    """`processes` members of a new group projecting what `await fill()` appends to their
    empty log into the fresh read model at `url`."""
    engine = make_engine(url)
    await prepare_schema(url, engine)
    group = f"bench-scale-{next(_serial)}"
    members: list[Member] = []
    try:
        for i in range(processes):  # one after the other: two first starts on one data dir race
            members.append(Member(directory, f"{group}-{i}", env, group, consensus_on))
            await _until(members[-1].joining, members, "the member's start")
        await _until(lambda: _stable(members), members, "a stable group")
        await fill()
        started, during = time.perf_counter(), await _applied(engine)
        cpu = sum(member.cpu_seconds() for member in members)
        while await _applied(engine) < expected:
            await _pause(members)
        elapsed = time.perf_counter() - started
        cpu = sum(member.cpu_seconds() for member in members) - cpu
        if not consensus_on:
            await _check_constant_scores(engine)
        return CatchUp((expected - during) / elapsed, (expected - during) / max(cpu, 0.01), during)
    finally:
        for member in members:
            member.stop()
        await engine.dispose()


def _stable(members: list[Member]) -> bool:
    held = [member.held() for member in members]
    return all(held) and set().union(*held) == set(range(PARTITIONS))


async def _until(condition, members: list[Member], what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {what} after {timeout:.0f} s")
        await _pause(members)


async def _pause(members: list[Member]) -> None:
    for member in members:
        member.check_alive()
    await asyncio.sleep(0.05)


async def _applied(engine) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(event_index))).scalar_one()


async def _check_constant_scores(engine) -> None:
    async with engine.connect() as conn:
        scores = set((await conn.execute(select(runs.c.score))).scalars())
    if scores - {CONSTANT_SCORE, None}:
        raise RuntimeError(f"consensus-off run scored {sorted(scores)[:5]}: the constant scorer was not used")


async def kafka_rows(infra, workload: Workload, repeat: int, say) -> list[Row]:
    """Kafka -> PostgreSQL: a new topic and a fresh database per catch-up."""
    async def one(processes: int, consensus_on: bool, directory: Path) -> CatchUp:
        topic = f"bench.scale.{os.getpid()}.{next(_serial)}"
        log = KafkaEventLog(infra.kafka, topic=topic, partitions=PARTITIONS)
        await log.start()  # creates the topic, empty
        url = await infra.new_database(f"scale{processes}")
        env = {"RUNLEDGER_KAFKA_BOOTSTRAP": infra.kafka, "RUNLEDGER_TOPIC": topic, "RUNLEDGER_DATABASE_URL": url,
               "RUNLEDGER_DATA_DIR": str(directory / "data")}
        try:
            return await catch_up(env, url, lambda: log.append(workload.messages), len(workload), processes,
                                  consensus_on, directory)
        finally:
            await log.close()

    return await _rows("Kafka -> PostgreSQL", one, repeat, say)


async def embedded_rows(workload: Workload, repeat: int, say) -> list[Row]:
    """The embedded log (SQLite, its own consumer groups) -> SQLite: a fresh directory per catch-up."""
    async def one(processes: int, consensus_on: bool, directory: Path) -> CatchUp:
        data = directory / f"data-{next(_serial)}"
        data.mkdir()
        log = SqliteEventLog(data / "log.db", partitions=PARTITIONS)
        await log.start()  # creates the empty log before the members open it
        url = f"sqlite+aiosqlite:///{data / 'readmodel.db'}"
        try:
            return await catch_up({"RUNLEDGER_DATA_DIR": str(data)}, url, lambda: log.append(workload.messages),
                                  len(workload), processes, consensus_on, directory)
        finally:
            await log.close()

    return await _rows("embedded (SQLite log -> SQLite)", one, repeat, say)


async def _rows(path: str, one, repeat: int, say) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="rl-bench-scale-") as tmp:
        for consensus_on in (False, True):
            figures = {p: (Figure("events/s"), Figure("events per CPU-second")) for p in (1, 2)}
            for i in range(repeat):
                for processes, (rate, per_cpu) in figures.items():  # side by side in each repetition
                    done = await one(processes, consensus_on, Path(tmp))
                    rate.values.append(done.rate)
                    per_cpu.values.append(done.per_cpu_second)
                    say(f"scale {path}, consensus {'on' if consensus_on else 'off'}, rep {i + 1}: "
                        f"{processes} process(es) {done.rate:,.0f} events/s, {done.per_cpu_second:,.0f} per "
                        f"CPU-second ({done.during:,} applied during the append)")
            label = f"projector {path}, consensus {'on' if consensus_on else 'off'}: 2 `runledger project` processes"
            rows.append(Row(label, figures[2][0], "1 process", figures[1][0]))
            rows.append(Row(f"{label}, CPU cost", figures[2][1], "1 process", figures[1][1]))
    return rows


def member(argv: list[str]) -> int:
    """`runledger project --group G`, with the scorer swapped for a constant on `--consensus off`."""
    parser = argparse.ArgumentParser(prog="bench.bench_scale member")
    parser.add_argument("--group", required=True)
    parser.add_argument("--consensus", choices=["on", "off"], default="on")
    args = parser.parse_args(argv)
    from services.fold_processes import exit_with_parent

    exit_with_parent()  # a bench that dies leaves no member behind
    if args.consensus == "off":
        from projections.domain import fold

        from .projection import constant_scorer
        fold.score_document = constant_scorer
    from services.cli import main as runledger

    return runledger(["project", "--group", args.group])


def main(argv: list[str]) -> int:
    if argv[:1] == ["member"]:
        return member(argv[1:])
    parser = argparse.ArgumentParser(prog="bench.bench_scale", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--docs", type=int, default=50)
    parser.add_argument("--n", type=int, default=5, choices=[3, 5, 7])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--embedded-only", action="store_true")
    parser.add_argument("--kafka-only", action="store_true")
    args = parser.parse_args(argv)
    from .run import machine, say
    from .table import markdown

    workload = Workload(args.runs, args.docs, args.n)
    rows = asyncio.run(_measure(args, workload, say))
    print(f"\n.venv/bin/python -m bench.bench_scale {' '.join(argv)}  ({machine()}; medians of {args.repeat})\n")
    print(markdown(rows))
    return 0


async def _measure(args, workload: Workload, say) -> list[Row]:
    rows: list[Row] = []
    if not args.embedded_only:
        from .infra import servers

        with tempfile.TemporaryDirectory(prefix="rl-bench-") as tmp, servers(Path(tmp)) as infra:
            rows += await kafka_rows(infra, workload, args.repeat, say)
    if not args.kafka_only:
        rows += await embedded_rows(workload, args.repeat, say)
    return rows


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
