"""The audit CLI: `runledger history RUN_ID`, `tail [--run ID]`, `dead-letters list | show | retry`,
`status`, and `audit digest | export | check | public-key` (services/ops/notary_cli.py). Rich tables for people, `--json` for scripts; all act on the local settings."""
from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from rich.table import Table

from ..settings import Settings
from . import notary_cli
from .local import console, fail, local_runtime, print_json


def add_parsers(commands) -> None:
    history = commands.add_parser("history", help="a run's events: accepted or rejected, and its counters before -> after")
    history.add_argument("run_id")
    _common(history)

    tail = commands.add_parser("tail", help="follow the log live (Ctrl-C to stop)")
    tail.add_argument("--run", metavar="RUN_ID", help="only this run's events")
    tail.add_argument("--from-start", action="store_true", help="from offset 0 instead of the end")
    tail.add_argument("--limit", type=int, help="stop after this many events")
    _common(tail)

    dead = commands.add_parser("dead-letters", help="records the projection set aside").add_subparsers(
        dest="dead_command", required=True)
    _common(dead.add_parser("list", help="every dead letter with its reason"))
    show = dead.add_parser("show", help="one dead letter, its bytes as text")
    show.add_argument("position", help="PARTITION:OFFSET")
    _common(show)
    retry = dead.add_parser("retry", help="decode again (e.g. after an upcaster shipped) and project what now decodes")
    retry.add_argument("position", nargs="?", help="PARTITION:OFFSET (default: every dead letter)")
    _common(retry)

    _common(commands.add_parser("status", help="per projection and partition: checkpoint, end, lag, events/s"))
    notary_cli.add_parsers(commands)  # runledger audit digest | export | check | public-key


def _common(parser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--data-dir", type=Path)


HANDLED = ("history", "tail", "dead-letters", "status", "audit")


def handle(settings: Settings, args: argparse.Namespace) -> int:
    if args.command == "audit":
        return notary_cli.handle(settings, args)
    work = {"history": _history, "tail": _tail, "dead-letters": _dead_letters, "status": _status}[args.command]
    try:
        return asyncio.run(work(settings, args))
    except KeyboardInterrupt:
        return 0


async def _history(settings: Settings, args) -> int:
    from . import audit

    async with local_runtime(settings) as runtime:
        steps = await audit.history(runtime.engine, args.run_id, runtime.log)
    if not steps:
        return fail(f"no events for run {args.run_id!r}")
    if args.json:
        print_json(steps)
        return 0
    table = Table(title=f"run {args.run_id}: {len(steps)} events")
    for column in ("position", "occurred at", "type", "producer", "outcome", "counters before -> after", "trace id"):
        table.add_column(column)
    for s in steps:
        outcome = "[green]accepted[/green]" if s["accepted"] else f"[red]rejected[/red]: {s['reason']}"
        table.add_row(s["position"], str(s["occurred_at"]), s["type"], s["producer"], outcome,
                      audit.describe_change(s["before"], s["after"]), s["trace_id"] or "")
    console.print(table)
    return 0


async def _tail(settings: Settings, args) -> int:
    from . import audit

    async with local_runtime(settings) as runtime:
        async for line in audit.tail(runtime.log, args.run, args.from_start, args.limit):
            if args.json:  # one JSON object per line, as it comes
                print_json(line, compact=True)
            else:
                console.print(f"{line['position']:>10} {line['occurred_at']} {line['type']:<24} "
                              f"{line['aggregate_id']} [dim]{line['producer']}[/dim]"
                              + (f" [red]undecodable: {line['error']}[/red]" if line.get("error") else ""))
    return 0


async def _dead_letters(settings: Settings, args) -> int:
    from . import audit

    async with local_runtime(settings) as runtime:
        if args.dead_command == "list":
            rows = await audit.dead_letters(runtime.engine)
        elif args.dead_command == "show":
            rows = await audit.dead_letters(runtime.engine, args.position)
            if not rows:
                return fail(f"no dead letter at {args.position}")
        else:
            rows = await audit.retry_dead_letters(runtime.engine, args.position)
    if args.json:
        print_json(rows)
        return 0
    if args.dead_command == "show":
        console.print(rows[0])
        return 0
    table = Table(title="dead letters" if args.dead_command == "list" else "retried dead letters")
    columns = ("position", "key", "reason") if args.dead_command == "list" else ("position", "outcome")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[c]) for c in columns))
    console.print(table)
    return 0


async def _status(settings: Settings, args) -> int:
    from . import audit

    async with local_runtime(settings) as runtime:
        status = await audit.status(runtime)
    if args.json:
        print_json(status)
        return 0
    table = Table(title=f"read model version {status['read_model_version']}")
    for column in ("projection", "partition", "checkpoint", "end", "lag (events)", "lag (s)", "events/s",
                   "stopped"):
        table.add_column(column, justify="right")
    for projection in status["projections"]:
        for p in projection["partitions"]:
            table.add_row(projection["name"], str(p["partition"]), str(p["checkpoint"]), str(p["end_offset"]),
                          str(p["lag"]), f"{p['lag_seconds']:.1f}", f"{p['events_per_second']:.1f}",
                          p["stopped"] or "")
    console.print(table)
    return 0
