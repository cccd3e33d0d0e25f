"""`runledger demo`: a whole run against a running server, watched live.

Defines an extract block, creates an experiment of sample invoices (n_consensus 5),
starts a run and works it with an in-process worker running the demo block, which
emits over HTTP like any remote worker would. Ends with the metrics summary.
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys
from contextlib import suppress

import httpx
from rich.console import Console

from ..fingerprints import document_id
from ..settings import DEFAULT_API_URL, Settings
from .demo_block import demo_block, seed
from .harness import Worker
from .launch import Emit, SetupError, make_producer, open_log
from .progress import show_outcome, watch_run
from .samples import sample_documents

WORKFLOW, BLOCK = "wf_demo", "invoice-extract"
UNSEEN_AFTER = 15


async def paced(block_type: str, config: dict, handle_inputs: dict, pass_index: int, pace: float = 1.0) -> dict:
    """The demo block behind a made-up, deterministic model latency, so progress is visible."""
    await asyncio.sleep(pace * (0.2 + 0.7 * (seed(handle_inputs, pass_index) % 1000) / 999))
    return demo_block(block_type, config, handle_inputs, pass_index)


async def main(settings: Settings, args) -> int:
    logging.getLogger().setLevel(logging.WARNING)  # the progress display is the output
    console = Console()
    api_url = args.api_url or os.environ.get("RUNLEDGER_API_URL") or DEFAULT_API_URL
    api_key = args.api_key or os.environ.get("RUNLEDGER_API_KEY")
    if not api_key:
        console.print("[red]runledger demo needs an API key.[/] Start the server with `runledger serve` (it prints "
                      "one on first start), then `export RUNLEDGER_API_KEY=<key>` or pass --api-key.")
        return 2
    try:
        log_ = open_log(settings)
        producer, org = await make_producer(settings, Emit(api_url, api_key))
    except SetupError as exc:
        console.print(f"[red]runledger demo:[/] {exc}")
        return 2
    await log_.start()
    try:
        async with httpx.AsyncClient(base_url=api_url, headers={"Api-Key": api_key}, timeout=30) as client:
            return await _demo(client, console, log_, producer, org, args, _where(settings))
    except SetupError as exc:
        console.print(f"[red]runledger demo:[/] {exc}")
        return 2
    finally:
        await producer.close()
        await log_.close()


async def _demo(client: httpx.AsyncClient, console: Console, log_, producer, org: str, args, where: str) -> int:
    documents = sample_documents(args.documents)
    run_id = await _start_run(client, console, documents)
    pace = args.pace

    async def block(block_type: str, config: dict, handle_inputs: dict, pass_index: int) -> dict:
        return await paced(block_type, config, handle_inputs, pass_index, pace)

    worker = Worker(block, producer, log_, org_id=org, concurrency=args.concurrency,
                    select=lambda run: run.run_id == run_id, name=f"demo:{os.getpid()}")
    working = asyncio.create_task(worker.run())
    n = 5 * args.documents
    try:
        run = await watch_run(client, run_id, console, passes=lambda: f"passes {worker.stats.completed}/{n}",
                              check=lambda run, seconds: _check_seen(run, seconds, worker, where))
    except (KeyboardInterrupt, asyncio.CancelledError, SetupError):
        with suppress(httpx.HTTPError):
            await client.post(f"/v1/workflows/experiments/runs/{run_id}/cancel", json={"reason": "demo interrupted"})
        raise
    finally:
        worker.stop()
        await asyncio.gather(working, return_exceptions=True)
    await show_outcome(client, run, console, names=_names(documents))
    console.print(f"\nThe run's full history: GET {client.base_url}/v1/workflows/experiments/runs/{run_id}/events")
    return 0 if run["lifecycle"]["status"] == "completed" else 1


async def _start_run(client: httpx.AsyncClient, console: Console, documents: list[dict]) -> str:
    _check(await client.put(f"/v1/workflows/{WORKFLOW}/blocks/{BLOCK}", json={"type": "extract", "config": {}}))
    experiment = _check(await client.post("/v1/workflows/experiments", json={
        "workflow_id": WORKFLOW, "block_id": BLOCK, "name": "Demo: sample invoices", "n_consensus": 5,
        "documents": documents,
    }))
    body = {"experiment_id": experiment["id"], "trigger_type": "manual"}  # someone at a terminal started it
    run = _check(await client.post("/v1/workflows/experiments/runs", json=body))
    console.print(f"block [bold]{WORKFLOW}/{BLOCK}[/] (extract) · experiment [bold]{experiment['id']}[/] with "
                  f"{len(documents)} sample invoices, 5 passes each · run [bold]{run['id']}[/]")
    return run["id"]


def _where(settings: Settings) -> str:
    return f"topic {settings.topic} at {settings.kafka_bootstrap}" if settings.kafka_bootstrap else str(settings.log_path)


def _check_seen(run: dict, seconds: float, worker: Worker, where: str) -> None:
    """A run still pending that the worker never read means it reads another log."""
    if run["lifecycle"]["status"] in ("pending", "queued") and seconds > UNSEEN_AFTER and run["id"] not in worker.runs:
        raise SetupError(f"after {UNSEEN_AFTER} s the worker has not seen run {run['id']} in {where}: is --data-dir "
                         f"(or RUNLEDGER_DATA_DIR, or the Kafka settings) the same as the server's?")


def _names(documents: list[dict]) -> dict[str, str]:
    """Documents by what they are (invoice number, vendor), keyed by the id the server gives them."""
    names = {}
    for document in documents:
        invoice = document["handle_inputs"]["invoice"]["data"]
        names[document_id(document["handle_inputs"])] = f"{invoice['invoice_number']} · {invoice['vendor']['name']}"
    return names


def _check(response: httpx.Response) -> dict:
    if response.status_code >= 400:
        raise SetupError(f"{response.request.method} {response.request.url.path} answered "
                         f"{response.status_code}: {response.text}")
    return response.json()


def run(settings: Settings, args) -> int:
    try:
        return asyncio.run(main(settings, args))
    except KeyboardInterrupt:
        print("\ninterrupted; the demo run was cancelled", file=sys.stderr)
        return 130
