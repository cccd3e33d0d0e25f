"""Upcasters lift stored payloads written by older producers to the current schema.

Each upcaster takes a payload dict at version N and returns it at version N + 1.
"""
from __future__ import annotations

from typing import Any, Callable

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    def register(fn: Upcaster) -> Upcaster:
        _UPCASTERS[(event_type, from_version)] = fn
        return fn

    return register


def upcast(event_type: str, version: int, target: int, payload: dict[str, Any]) -> dict[str, Any]:
    while version < target:
        step = _UPCASTERS.get((event_type, version))
        if step is None:
            raise ValueError(f"no upcaster for {event_type} v{version}")
        payload = step(payload)
        version += 1
    return payload


@upcaster("DocumentPassFailed", 1)
def _pass_failed_error_object(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 had `error: "<message>"` and an optional `error_code`."""
    lifted = {k: v for k, v in payload.items() if k != "error_code"}
    lifted["error"] = {"message": str(payload.get("error", "")), "code": payload.get("error_code")}
    return lifted
