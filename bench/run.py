"""`make bench`: runledger side by side with its yardsticks, in one run, one table.

    .venv/bin/python -m bench.run                 # issue 11's workload, medians of 3
    .venv/bin/python -m bench.run --quick         # a smoke run: small workload, 1 repetition
    .venv/bin/python -m bench.run --embedded-only # no Kafka/PostgreSQL: the embedded rows only
    .venv/bin/python -m bench.run --write-doc     # also put the table into docs/benchmarks.md

Starts its own Kafka and PostgreSQL (scripts/kafka.sh, scripts/postgres.sh) on loopback
and stops them on exit. Figures are medians of `--repeat` repetitions; no test asserts any.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from . import doc, external
from .table import Row, markdown
from .workload import Workload

ROOT = Path(__file__).resolve().parents[1]


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--docs", type=int, default=50, help="documents per run")
    parser.add_argument("--n", type=int, default=5, choices=[3, 5, 7], help="passes per document")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per row (the median is shown)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load-tool measurement")
    parser.add_argument("--quick", action="store_true", help="smoke run: 8 runs x 10 docs, 1 repetition, 2 s loads")
    parser.add_argument("--embedded-only", action="store_true", help="skip everything needing Kafka/PostgreSQL")
    parser.add_argument("--skip", action="append", default=[], choices=["projector", "embedded", "api", "ingest",
                                                                         "consensus", "rebuild", "scale", "bounded", "notary"])
    parser.add_argument("--api-workers", type=int, default=1,
                        help="API processes of the HTTP rows' `runledger serve --workers N` (default 1)")
    parser.add_argument("--rebuild-events", type=int, help="events in the rebuild's log (default: bench_rebuild.py's, 1 M)")
    parser.add_argument("--write-doc", action="store_true", help="replace the results section of docs/benchmarks.md")
    parser.add_argument("--workdir", type=Path, help="where servers keep their files (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.docs, args.repeat, args.duration = 8, 10, 1, 2.0
    return args


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def measure(args: argparse.Namespace, workdir: Path) -> list[Row]:
    from . import projector_rows

    workload = Workload(args.runs, args.docs, args.n)
    say(f"workload: {args.runs} runs x {args.docs} documents x {args.n} passes = {len(workload):,} events")
    rows: list[Row] = []
    if not args.embedded_only:
        from .infra import servers

        say("starting Kafka and PostgreSQL (scripts/kafka.sh, scripts/postgres.sh)")
        with servers(workdir) as infra:
            rows += await _with_servers(args, infra, workload)
    if "embedded" not in args.skip:
        rows += await projector_rows.embedded_rows(workload, args.repeat, say)
    if "consensus" not in args.skip:
        rows += external.consensus(args, say)
    if "rebuild" not in args.skip and args.embedded_only:
        rows += external.rebuild(args, say)
    if "bounded" not in args.skip:
        rows += external.bounded_cost(args, say)
    if "notary" not in args.skip:
        from . import bench_notary

        docs, workload = (200, Workload(8, 10, 5)) if args.quick else (2000, workload)
        rows += await bench_notary.rows(docs, 7, args.repeat if args.quick else max(args.repeat, 3), workload, say)
    return rows


async def _with_servers(args, infra, workload: Workload) -> list[Row]:
    from . import projector_rows

    rows: list[Row] = []
    if "projector" not in args.skip:
        rows += await projector_rows.kafka_rows(infra, workload, args.repeat, say)
    if "scale" not in args.skip:
        from . import bench_scale

        rows += await bench_scale.kafka_rows(infra, workload, args.repeat, say)
    if "api" not in args.skip or "ingest" not in args.skip:
        from . import http_rows

        rows += await http_rows.rows(args, infra, workload, say)
    if "rebuild" not in args.skip:  # SQLite beside PostgreSQL, one log
        rows += await asyncio.to_thread(external.rebuild, args, say, infra)
    return rows


def machine() -> str:
    load = os.getloadavg()
    return (f"{os.cpu_count()} CPU {platform.machine()} ({_cpu_model()}), Python {platform.python_version()}, "
            f"load average {load[0]:.1f} at the end")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def command(argv: list[str]) -> str:
    return ".venv/bin/python -m bench.run " + " ".join(argv) if argv else "make bench"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="rl-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        rows = asyncio.run(measure(args, workdir))
    table = markdown(rows)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\n{command(argv)}  ({when}; {machine()}; medians of {args.repeat})\n")
    print(table)
    if args.write_doc:
        doc.write(ROOT / "docs" / "benchmarks.md", table, command(argv), when, machine(), args.repeat)
        say("table written to docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
