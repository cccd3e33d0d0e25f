"""The block function contract: what a worker calls for one pass of one document.

    def block(block_type: str, config: dict, handle_inputs: dict, pass_index: int) -> dict
    async def block(block_type: str, config: dict, handle_inputs: dict, pass_index: int) -> dict

`block_type` and `config` are the run's frozen block definition; `handle_inputs` is
the document as given to the experiment (`{"name": {"type": "json", "data": ...}}` or
a file handle); `pass_index` runs from 0 to n_consensus - 1. Return the pass output
(DESIGN §6: extract → any JSON object; classifier → {"category": label};
split → {"splits": [...]}; for_each → {"items": [...]}). Raise `Retryable` to ask
for another attempt; any other exception fails the pass for good. Sync functions
run in a thread, so they may block; async functions run on the worker's loop.
"""
from __future__ import annotations

import asyncio
import importlib
import inspect
from typing import Any, Awaitable, Callable, Union

BlockFunction = Callable[[str, dict, dict, int], Union[dict, Awaitable[dict]]]


class Retryable(Exception):
    """Raised by a block for a transient failure (rate limit, timeout): try again later."""

    def __init__(self, message: str = "retryable failure", code: str | None = None):
        super().__init__(message)
        self.code = code


async def call_block(fn: BlockFunction, block_type: str, config: dict, handle_inputs: dict, pass_index: int) -> Any:
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None)):
        return await fn(block_type, config, handle_inputs, pass_index)
    result = await asyncio.to_thread(fn, block_type, config, handle_inputs, pass_index)
    if inspect.isawaitable(result):
        return await result
    return result


def load_block(spec: str) -> BlockFunction:
    """`package.module:function` → the function."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"--block wants 'module:function', got {spec!r}")
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"{spec!r} is not callable")
    return target
