"""`runledger quarantine list | retry AGGREGATE_ID`: runs set aside on a deterministic
failure (projections/runtime/quarantine.py), and folding their parked events once the fix ships."""
from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from rich.table import Table

from ..settings import Settings
from .local import console, fail, local_runtime, print_json

HANDLED = ("quarantine",)


def add_parsers(commands) -> None:
    group = commands.add_parser("quarantine", help="runs quarantined on a projector failure: list, retry")
    actions = group.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="quarantined runs, their error and parked events")
    listing.add_argument("--json", action="store_true")
    retry = actions.add_parser("retry", help="fold a quarantined run's parked events again (after the fix)")
    retry.add_argument("aggregate_id")
    retry.add_argument("--json", action="store_true")
    for parser in (listing, retry):
        parser.add_argument("--data-dir", type=Path)


def handle(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_list(settings, args) if args.action == "list" else _retry(settings, args))


async def _list(settings: Settings, args) -> int:
    from projections.runtime import quarantine

    async with local_runtime(settings) as runtime:
        async with runtime.engine.connect() as conn:
            found = [q.as_json() for q in await quarantine.list_quarantined(conn)]
    if args.json:
        print_json(found)
        return 0
    table = Table("kind", "id", "org", "position", "parked", "since", "error")
    for q in found:
        table.add_row(q["kind"], q["aggregate_id"], q["org_id"], f"{q['partition']}:{q['offset']}",
                      str(q["parked"]), q["quarantined_at"], q["error"][:120])
    console.print(table if found else "no quarantined runs")
    return 0


async def _retry(settings: Settings, args) -> int:
    from projections.runtime import retry

    async with local_runtime(settings) as runtime:
        outcome = await retry.retry_parked(runtime.engine, args.aggregate_id)
    if args.json:
        print_json(outcome.as_json())
    elif outcome.lifted:
        console.print(f"{outcome.aggregate_id}: {outcome.applied} parked event(s) applied, quarantine lifted")
    if not outcome.lifted:
        return fail(f"{args.aggregate_id}: {outcome.error}", code=1)
    return 0
