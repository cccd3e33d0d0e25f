"""`runledger rebuild [--run ID]`, `runledger verify [--run ID]`, `runledger projections list | drop`."""
from __future__ import annotations

import argparse
import asyncio
import functools
import logging
from pathlib import Path

from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..settings import Settings
from .local import console, fail, local_runtime, print_json


def add_parsers(commands) -> None:
    rebuild = commands.add_parser("rebuild", help="replay the log into a new read-model version and switch to it "
                                                  "(--run: repair one run in place)")
    rebuild.add_argument("--run", metavar="RUN_ID", help="refold this run from its events and rewrite its rows")
    rebuild.add_argument("--jobs", type=int, default=1, metavar="N",
                         help="replay the partitions in N processes (default 1)")
    rebuild.add_argument("--json", action="store_true", help="machine-readable output (no live display)")
    rebuild.add_argument("--data-dir", type=Path)

    verify = commands.add_parser("verify", help="refold runs from their own events and compare with the live rows")
    verify.add_argument("--run", metavar="RUN_ID", help="only this run")
    verify.add_argument("--json", action="store_true")
    verify.add_argument("--data-dir", type=Path)

    versions = commands.add_parser("projections", help="read-model versions").add_subparsers(
        dest="projections_command", required=True)
    listing = versions.add_parser("list", help="every read-model version and which one is active")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--data-dir", type=Path)
    drop = versions.add_parser("drop", help="delete a retired version's data")
    drop.add_argument("version", type=int)
    drop.add_argument("--data-dir", type=Path)


HANDLED = ("rebuild", "verify", "projections")


def handle(settings: Settings, args: argparse.Namespace) -> int:
    if args.command == "rebuild":
        return asyncio.run(_repair(settings, args) if args.run else _rebuild(settings, args))
    if args.command == "verify":
        return asyncio.run(_verify(settings, args))
    if args.projections_command == "list":
        return asyncio.run(_list(settings, args))
    return asyncio.run(_drop(settings, args.version))


# -- rebuild -------------------------------------------------------------------------

async def _rebuild(settings: Settings, args) -> int:
    from projections.runtime import rebuild, versions

    from ..bootstrap import build_log

    for name in ("runledger.projector", "runledger.follow"):  # the live display says it all
        logging.getLogger(name).setLevel(logging.WARNING)
    if args.jobs < 1:
        return fail("--jobs must be at least 1")
    jobs = dict(jobs=args.jobs, open_log=functools.partial(build_log, settings),
                bulk_options=dict(flush_records=settings.bulk_flush_records,
                                  cache_budget=settings.bulk_cache_mb * 2**20))
    async with local_runtime(settings) as runtime:
        try:
            if args.json:
                progress = await rebuild.rebuild(runtime.log, runtime.control, settings.read_model_url, **jobs)
            else:
                with Live(console=console, refresh_per_second=4) as live:
                    progress = await rebuild.rebuild(runtime.log, runtime.control, settings.read_model_url,
                                                     report=lambda p: live.update(_progress_table(p)), **jobs)
        except (versions.VersionError, rebuild.RebuildFailed) as exc:
            return fail(str(exc), 1)
    location = versions.locate(settings.read_model_url, progress.version)
    if args.json:
        print_json({"version": progress.version, "location": location.describe(), "events": progress.done_events})
    else:
        console.print(f"read model version {progress.version} is active ({location.describe()}); "
                      f"{progress.done_events} events replayed. The previous version is kept until "
                      f"`runledger projections drop`.")
    return 0


def _progress_table(progress) -> Table:
    eta = progress.eta
    title = (f"rebuild into version {progress.version}: {progress.phase}, {progress.done_events}/"
             f"{progress.total_events} events, {progress.rate:,.0f} events/s, "
             f"ETA {'?' if eta is None else f'{eta:,.0f}s'}")
    table = Table(title=title)
    for column in ("partition", "replayed", "log end (start)", "live checkpoint", "behind live"):
        table.add_column(column, justify="right")
    lag = progress.lag_behind_live()
    for partition in sorted(progress.target):
        table.add_row(str(partition), str(progress.applied.get(partition, 0)), str(progress.target[partition]),
                      str(progress.live.get(partition, 0)), str(lag[partition]))
    return table


async def _repair(settings: Settings, args) -> int:
    from projections.runtime import verify

    async with local_runtime(settings) as runtime:
        try:
            check = await verify.repair_run(runtime.engine, runtime.log, args.run)
        except verify.RunNotFound:
            return fail(f"no run {args.run!r} in the read model or its event index")
    if args.json:
        print_json({**check.as_json(), "repaired": not check.ok})
    elif check.ok:
        console.print(f"run {args.run}: rows already equal the refold of its {check.events} events; nothing changed")
    else:
        console.print(f"run {args.run}: rewrote its rows from {check.events} events; what changed:")
        console.print(_differences_table(check))
    return 0


# -- verify --------------------------------------------------------------------------

async def _verify(settings: Settings, args) -> int:
    """Verify one run or every run, in this process (chunk by chunk: memory stays flat),
    with a progress bar of the events refolded (none with --json)."""
    from projections.notary import logcheck
    from projections.runtime import verify

    log_report = None
    async with local_runtime(settings) as runtime:
        with _progress_bar(disable=args.json) as bar:
            task = bar.add_task("verifying", total=None)
            if args.run:
                async with runtime.engine.connect() as conn:
                    try:
                        checks = [await verify.verify_run(
                            conn, runtime.log, args.run,
                            lambda done, total: bar.update(task, description=f"run {args.run}", completed=done,
                                                           total=total))]
                    except verify.RunNotFound:
                        return fail(f"no run {args.run!r} in the read model or its event index")
            else:
                checks = []

                def report(run_id: str, done: int, total: int) -> None:
                    bar.update(task, description=f"{len(checks)} verified · run {run_id}", completed=done, total=total)

                async for check in verify.verify_all(runtime.engine, runtime.log, report):
                    checks.append(check)
                log_report = await logcheck.check_log(runtime.engine, runtime.log)  # the log against its trees
    bad = [c for c in checks if not c.ok]
    tampered = log_report is not None and not log_report.ok
    if args.json:
        print_json({"ok": not bad and not tampered, "runs": len(checks), "differing": [c.as_json() for c in bad],
                    **({"log": log_report.as_json()} if log_report is not None else {})})
    else:
        for check in bad:
            console.print(f"[red]run {check.run_id} differs[/red] (live {check.live_hash[:12]}, "
                          f"replayed {check.replayed_hash[:12]}; {check.difference_count} difference(s)); "
                          f"first: {check.differences[0].describe()}",
                          soft_wrap=True)
        verdict = "[green]all equal[/green]" if not bad else f"[red]{len(bad)} differ[/red]"
        console.print(f"verified {len(checks)} run(s) against their own events: {verdict}")
        if log_report is not None:
            _print_log_report(log_report)
    return 1 if bad or tampered else 0


def _print_log_report(report) -> None:
    for problem in report.problems:
        console.print(f"[red]{problem.describe()}[/red]")
    if report.more:
        console.print(f"[red]... and {report.more} more[/red]")
    if report.unnotarised:
        console.print(f"[yellow]partition(s) {report.unnotarised} have no Merkle tree (a read model made before "
                      f"the notary): `runledger rebuild` makes them[/yellow]")
    verdict = "[green]every record matches its leaf[/green]" if report.ok else "[red]the log was changed[/red]"
    console.print(f"checked {report.records} record(s) of the log against their Merkle trees: {verdict}")


def _progress_bar(disable: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("events"),
                    TimeElapsedColumn(), console=console, disable=disable, transient=True)


def _differences_table(check) -> Table:
    table = Table()
    for column in ("table", "row", "field", "was", "now"):
        table.add_column(column)
    for d in check.differences:
        table.add_row(d.table, d.key, d.field, _cell(d.live), _cell(d.replayed))
    if check.difference_count > len(check.differences):
        table.caption = f"and {check.difference_count - len(check.differences)} more"
    return table


def _cell(value) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- versions ------------------------------------------------------------------------

async def _list(settings: Settings, args) -> int:
    from projections.runtime import versions

    async with local_runtime(settings) as runtime:
        rows = await versions.list_versions(runtime.control)
    located = [(r, versions.locate(settings.read_model_url, r.version).describe()) for r in rows]
    if args.json:
        print_json([{"version": r.version, "status": r.status, "location": where, "created_at": r.created_at,
                     "activated_at": r.activated_at} for r, where in located])
        return 0
    table = Table(title="read-model versions")
    for column in ("version", "status", "location", "activated"):
        table.add_column(column)
    for r, where in located:
        table.add_row(str(r.version), r.status, where, str(r.activated_at or ""))
    console.print(table)
    return 0


async def _drop(settings: Settings, version: int) -> int:
    from projections.runtime import versions

    async with local_runtime(settings) as runtime:
        try:
            location = await versions.drop(runtime.control, settings.read_model_url, version)
        except versions.VersionError as exc:
            return fail(str(exc), 1)
    console.print(f"dropped read-model version {version} ({location.describe()})")
    return 0
