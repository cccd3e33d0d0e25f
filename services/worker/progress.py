"""Live terminal progress of one run (rich), read from the API, and its final metrics."""
from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

TERMINAL = ("completed", "error", "cancelled")


async def watch_run(client: httpx.AsyncClient, run_id: str, console: Console,
                    passes: Callable[[], str] | None = None, check: Callable[[dict, float], None] | None = None,
                    interval: float = 0.25) -> dict[str, Any]:
    """Show documents done, errors and the score so far until the run ends; return the run.
    `check(run, seconds)` may raise to give up (a run nobody works on)."""
    began = time.monotonic()
    columns = (SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[detail]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("documents", total=None, detail="")
        while True:
            response = await client.get(f"/v1/workflows/experiments/runs/{run_id}")
            response.raise_for_status()
            run = response.json()
            status = run["lifecycle"]["status"]
            done = run["completed_document_count"] + run["error_count"]
            detail = f"errors {run['error_count']}  score {_score(run['score'])}  {status}"
            if passes is not None:
                detail = f"{passes()}  {detail}"
            progress.update(task, total=run["total_document_count"], completed=done, detail=detail)
            if status in TERMINAL:
                return run
            if check is not None:
                check(run, time.monotonic() - began)
            await asyncio.sleep(interval)


async def show_outcome(client: httpx.AsyncClient, run: dict[str, Any], console: Console,
                       names: dict[str, str] | None = None) -> None:
    """The metrics summary if the server has it, else the run's own score. `names`: how
    to call documents (by document id) instead of their filenames."""
    status = run["lifecycle"]["status"]
    console.print(f"\nrun [bold]{run['id']}[/] {_status(status)}: {run['completed_document_count']} of "
                  f"{run['total_document_count']} documents scored, {run['error_count']} errors")
    if status == "error":
        console.print(f"[red]{run['lifecycle'].get('message')}[/]")
    response = await client.get("/v1/workflows/experiments/metrics", params={"run_id": run["id"], "view": "summary"})
    summary = response.json() if response.status_code == 200 else {}
    if summary.get("kind") != "summary":
        console.print(f"score (consensus agreement, 0..1): [bold]{_score(run['score'])}[/]")
        return
    console.print(_documents_table(summary, names or {}))
    likelihoods = (summary.get("aggregate") or {}).get("likelihoods") or {}
    if likelihoods:
        console.print(_targets_table(likelihoods))
    console.print(f"score (consensus agreement, 0..1): [bold]{_score(summary.get('score'))}[/]"
                  + (f"  (prior run {_score(summary['prior_score'])})" if summary.get("prior_score") is not None else ""))


def _documents_table(summary: dict[str, Any], names: dict[str, str]) -> Table:
    table = Table(title="Metrics summary: documents", title_justify="left")
    table.add_column("document")
    table.add_column("score", justify="right")
    for doc in summary.get("documents", []):
        table.add_row(names.get(doc["id"]) or doc.get("filename") or doc["id"], _score(doc.get("score")))
    return table


def _targets_table(likelihoods: dict[str, float], rows: int = 8) -> Table:
    table = Table(title=f"Least agreed fields (of {len(likelihoods)})", title_justify="left")
    table.add_column("field")
    table.add_column("likelihood", justify="right")
    for path, value in sorted(likelihoods.items(), key=lambda item: (item[1], item[0]))[:rows]:
        table.add_row(path, _score(value))
    return table


def _score(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _status(status: str) -> str:
    colour = {"completed": "green", "error": "red", "cancelled": "yellow"}.get(status, "white")
    return f"[{colour}]{status}[/]"
