"""The command side: append events, then wait until the projection has applied them."""
from __future__ import annotations

import time

from events.codec import encode
from events.envelope import Event
from events.log import Message, Position
from projections.runtime import changes, checkpoints

from .bootstrap import Runtime


class ProjectionLag(TimeoutError):
    """The projection did not pass `position` in time. Raised by `record` after its
    events were appended: then `appended` holds them and `positions` where they landed,
    and the API answers 202 with the resource folded from them (never a 5xx that
    would invite a retry, and with it a second run)."""

    def __init__(self, position: Position, timeout: float, appended: tuple[Event, ...] = (),
                 positions: tuple[Position, ...] = ()):
        super().__init__(f"projection has not reached {position.token()} within {timeout:g}s")
        self.position = position
        self.appended, self.positions = appended, positions


class KnownRuns:
    """(org, run) pairs this process has found in the read model, so ingestion can skip the
    query for them: bounded (the oldest are forgotten first), and only hits are kept."""

    def __init__(self, capacity: int = 100_000):
        self.capacity = capacity
        self._seen: dict[tuple[str, str], None] = {}

    def seen(self, org_id: str, run_id: str) -> bool:
        return (org_id, run_id) in self._seen

    def add(self, org_id: str, run_id: str) -> None:
        if len(self._seen) >= self.capacity:
            del self._seen[next(iter(self._seen))]
        self._seen[(org_id, run_id)] = None

    def __len__(self) -> int:
        return len(self._seen)


class Ledger:
    def __init__(self, runtime: Runtime, projection: str = "main"):
        self.runtime = runtime
        self.projection = projection
        self.known_runs = KnownRuns()

    async def append(self, events: list[Event]) -> list[Position]:
        messages = [Message(e.aggregate_id, encode(e)) for e in events]
        return await self.runtime.log.append(messages)

    async def record(self, events: list[Event]) -> list[Position]:
        """Append and wait until projected. Then this process's caches forget the events'
        organisations, so a read after the command's answer (without its position token)
        never meets an answer from before it, whichever process projected it."""
        positions = await self.append(events)
        try:
            await self.settle(positions)
        except ProjectionLag as lag:
            raise ProjectionLag(lag.position, self.runtime.settings.wait_timeout, tuple(events),
                                tuple(positions)) from None
        changes.published(changes.Changed.everything_of(e.org_id for e in events))
        return positions

    async def settle(self, positions: list[Position], timeout: float | None = None) -> None:
        """Wait (bounded) until the projection has passed every position."""
        timeout = self.runtime.settings.wait_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        for position in _latest_per_partition(positions):
            if not await self._wait(position, max(0.0, deadline - time.monotonic())):
                raise ProjectionLag(position, timeout)

    async def _wait(self, position: Position, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        if self.runtime.projector is not None:  # falls back to the stored checkpoint itself
            return await self.runtime.projector.wait(position, timeout)
        return await checkpoints.wait_until_stored(lambda: self.runtime.engine, self.projection, position.partition,
                                                   position.offset, deadline)


def _latest_per_partition(positions: list[Position]) -> list[Position]:
    latest: dict[int, Position] = {}
    for position in positions:
        if position.partition not in latest or position.offset > latest[position.partition].offset:
            latest[position.partition] = position
    return list(latest.values())
