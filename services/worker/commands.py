"""The `runledger worker` and `runledger demo` subcommands: their options, and entry
points that import the worker (and the fold, and scipy) only when they run."""
from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from ..settings import DEFAULT_API_URL, Settings


def add_parsers(commands) -> None:
    worker = commands.add_parser("worker", help="run a block function over queued runs")
    worker.add_argument("--block", required=True, metavar="MODULE:FUNCTION",
                        help="the block function, e.g. services.worker.demo_block:demo_block")
    worker.add_argument("--api-url", help=f"emit over HTTP to this server (default {DEFAULT_API_URL} "
                                          "with the embedded log; env RUNLEDGER_API_URL)")
    worker.add_argument("--api-key", help="API key for --api-url (env RUNLEDGER_API_KEY)")
    worker.add_argument("--kafka-bootstrap", help="read runs from this Kafka cluster (and, without --api-url, "
                                                  "emit to it)")
    worker.add_argument("--org", help="the organisation to work for when emitting straight to Kafka")
    worker.add_argument("--data-dir", type=Path, help="the server's data directory (embedded log)")
    worker.add_argument("--concurrency", type=int, default=8, help="passes in flight at once (default 8)")
    worker.add_argument("--max-attempts", type=int, default=3, help="attempts per pass on Retryable (default 3)")
    worker.add_argument("--backoff", type=float, default=0.5, help="first retry delay in seconds, then doubling")
    worker.add_argument("--workflow-id", help="only runs of this workflow")
    worker.add_argument("--block-id", help="only runs of this block")

    demo = commands.add_parser("demo", help="watch a sample run end to end against a running server")
    demo.add_argument("--api-url", help=f"the server (default {DEFAULT_API_URL}; env RUNLEDGER_API_URL)")
    demo.add_argument("--api-key", help="API key (env RUNLEDGER_API_KEY; `runledger serve` prints one on first start)")
    demo.add_argument("--data-dir", type=Path, help="the server's data directory (embedded log)")
    demo.add_argument("--documents", type=int, default=6, help="sample invoices in the experiment (default 6)")
    demo.add_argument("--concurrency", type=int, default=8, help="passes in flight at once (default 8)")
    demo.add_argument("--pace", type=float, default=1.0,
                      help="scale the simulated model latency (0 for none; default 1: 0.2-0.9 s a pass)")


def worker(settings: Settings, args: argparse.Namespace) -> int:
    from . import launch
    return asyncio.run(launch.main(settings, args))


def demo(settings: Settings, args: argparse.Namespace) -> int:
    from . import demo as demo_
    return demo_.run(settings, args)
