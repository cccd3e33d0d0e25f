"""Transient faults: which errors are worth retrying, and the retry policy (tenacity).

A transient fault is one the same work may not meet again: a locked SQLite database
(a backup or VACUUM holds the write lock past the busy timeout), a dropped or reset
PostgreSQL connection, a server restart or failover, a broker that is briefly away, a
full disk (projections/runtime/storage_full.py: it lasts until an operator frees space).
Those are retried with capped exponential backoff for as long as it takes; they never
stop a partition. Anything else raised on a valid event is deterministic (a bug) and
goes to quarantine (projections/runtime/quarantine.py).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, TypeVar

from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, TimeoutError as PoolTimeout
from tenacity import AsyncRetrying, retry_if_exception, wait_exponential_jitter

from projections.runtime.storage_full import is_resource_shortage, is_storage_full

log = logging.getLogger("runledger.projector")
T = TypeVar("T")

# Backoff: 50 ms doubling up to 5 s (with jitter), forever, until the caller stops.
WAIT = wait_exponential_jitter(initial=0.05, max=5.0, jitter=0.2)

_TRANSIENT_TEXT = ("database is locked", "database is busy", "connection", "terminating", "shutting down",
                   "server closed", "the database system is", "could not connect", "timeout", "timed out")


def is_transient(exc: BaseException) -> bool:
    """Locks, dropped connections, restarts, failovers, full disks: retry. Everything else: not."""
    if getattr(exc, "transient", False):  # e.g. projections.runtime.quarantine.QuarantineLifted
        return True
    if is_storage_full(exc) or is_resource_shortage(exc):
        return True
    if isinstance(exc, (ConnectionError, TimeoutError, asyncio.TimeoutError, DisconnectionError, PoolTimeout)):
        return True
    if isinstance(exc, OSError) and not isinstance(exc, (FileNotFoundError, PermissionError)):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or isinstance(exc, InterfaceError):
            return True
        text = str(exc.orig if exc.orig is not None else exc).lower()
        return any(t in text for t in _TRANSIENT_TEXT)
    return _is_kafka_retriable(exc)


def _is_kafka_retriable(exc: BaseException) -> bool:
    try:
        from aiokafka.errors import KafkaConnectionError, KafkaError
    except ImportError:  # pragma: no cover - aiokafka is a dependency
        return False
    if isinstance(exc, KafkaConnectionError):
        return True
    return isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False))


async def retry_transient(work: Callable[[], Awaitable[T]], what: str, stopping: Callable[[], bool],
                          on_retry: Callable[[BaseException], None] | None = None) -> T:
    """`await work()`, again after each transient fault, with backoff, until it succeeds or
    `stopping()` (then the last fault is raised). Other errors are raised at once."""

    def stop(state) -> bool:
        return stopping()

    def before_sleep(state) -> None:
        exc = state.outcome.exception()
        log.warning("%s: transient %s (attempt %s), retrying: %s", what, type(exc).__name__,
                    state.attempt_number, _short(exc))
        if on_retry is not None:
            on_retry(exc)

    retrying = AsyncRetrying(retry=retry_if_exception(is_transient), wait=WAIT, stop=stop,
                             before_sleep=before_sleep, reraise=True)
    async for attempt in retrying:
        with attempt:
            return await work()
    raise AssertionError("unreachable: tenacity reraises the last fault")


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text[:200]
