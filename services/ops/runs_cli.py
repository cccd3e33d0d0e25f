"""`runledger run EXPERIMENT_ID`: create a run through the API, saying what started it.

A person at a terminal is `manual` (the default); a scheduler or a webhook handler that
calls the CLI says `--trigger-type schedule|webhook|...`. The run goes through the same
checks as any API call, and starts `pending` until a worker takes it.
"""
from __future__ import annotations

import argparse
import os
from typing import get_args

import httpx

from ..api.bodies import TriggerType
from ..settings import DEFAULT_API_URL, Settings
from .local import console, fail, print_json

TRIGGER_TYPES = get_args(TriggerType)
HANDLED = ("run",)


def add_parsers(commands) -> None:
    run = commands.add_parser("run", help="create a run of an experiment (through the API)")
    run.add_argument("experiment_id")
    run.add_argument("--trigger-type", choices=TRIGGER_TYPES, default="manual",
                     help="what started the run (default: manual)")
    run.add_argument("--plan-token", help="refuse the run if the plan changed since this token (POST .../runs/plan)")
    run.add_argument("--api-url", help=f"the server (default {DEFAULT_API_URL}; env RUNLEDGER_API_URL)")
    run.add_argument("--api-key", help="API key (env RUNLEDGER_API_KEY)")
    run.add_argument("--json", action="store_true", help="print the run resource as JSON")


def handle(settings: Settings, args: argparse.Namespace) -> int:
    api_url = args.api_url or os.environ.get("RUNLEDGER_API_URL") or DEFAULT_API_URL
    api_key = args.api_key or os.environ.get("RUNLEDGER_API_KEY")
    if not api_key:
        return fail("an API key is needed: --api-key or RUNLEDGER_API_KEY")
    body = {"experiment_id": args.experiment_id, "trigger_type": args.trigger_type, "plan_token": args.plan_token}
    try:
        response = httpx.post(f"{api_url.rstrip('/')}/v1/workflows/experiments/runs", headers={"Api-Key": api_key},
                              json={k: v for k, v in body.items() if v is not None}, timeout=60)
    except httpx.HTTPError as exc:
        return fail(f"cannot reach runledger at {api_url} ({exc})")
    if response.status_code >= 400:
        detail = response.json().get("detail", response.text)
        return fail(f"HTTP {response.status_code}: {detail.get('message') if isinstance(detail, dict) else detail}")
    run = response.json()
    if args.json:
        print_json(run)
    else:
        console.print(f"{run['id']} {run['lifecycle']['status']} (trigger {run['trigger']['type']}, "
                      f"{run['total_document_count']} documents × {run['n_consensus']} passes)")
    return 0
