"""What an operations command acts on: the local settings' log, control store and the
active read-model version, with no projector of its own."""
from __future__ import annotations

import contextlib
import sys
from typing import Any

import orjson
from rich.console import Console

from ..settings import Settings

console = Console()
errors = Console(stderr=True)


@contextlib.asynccontextmanager
async def local_runtime(settings: Settings):
    from ..bootstrap import start_runtime  # the CLI's parser loads without the fold and its engines

    runtime = await start_runtime(settings, with_projector=False)
    try:
        yield runtime
    finally:
        await runtime.close()


def print_json(value: Any, compact: bool = False) -> None:
    option = orjson.OPT_NON_STR_KEYS | (0 if compact else orjson.OPT_INDENT_2)
    sys.stdout.write(orjson.dumps(value, default=str, option=option).decode() + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = 2) -> int:
    errors.print(f"[red]runledger:[/red] {message}")
    return code
