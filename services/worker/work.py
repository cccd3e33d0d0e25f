"""What a worker holds for each run it owns, and its unit of concurrency."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from projections.domain.state import RunState

ACTIVE = frozenset({"pending", "queued", "running"})  # pending: not yet taken; this worker takes it
PassKey = tuple[str, int]  # (document_id, pass_index)


@dataclass
class RunWork:
    """What this worker knows of one run it owns, and the work it has in hand."""

    state: RunState
    partition: int
    retried: dict[PassKey, int] = field(default_factory=dict)  # highest non-final attempt on the log
    in_flight: set[PassKey] = field(default_factory=set)
    emitted: set[PassKey] = field(default_factory=set)  # final facts sent, not yet read back
    jobs: set[asyncio.Task] = field(default_factory=set)
    task: asyncio.Task | None = None
    not_before: float = 0.0
    worked: bool = False

    @property
    def run_id(self) -> str:
        return self.state.run_id

    @property
    def live(self) -> bool:
        return self.state.status in ACTIVE

    def missing(self) -> list[PassKey]:
        """Passes with no fact on the log, not in hand and not just sent, in document order."""
        docs = sorted(self.state.documents.values(), key=lambda d: d.index)
        busy = self.in_flight | self.emitted
        return [(d.document_id, i) for d in docs for i in range(self.state.n_consensus)
                if i not in d.passes and (d.document_id, i) not in busy]


@dataclass
class WorkerStats:
    started: int = 0
    completed: int = 0
    failed: int = 0
    retried: int = 0


class Slot:
    """One unit of the worker's concurrency, released once however its pass ends."""

    def __init__(self, semaphore: asyncio.Semaphore):
        self._semaphore, self.held = semaphore, True

    @classmethod
    async def take(cls, semaphore: asyncio.Semaphore) -> Slot:
        await semaphore.acquire()
        return cls(semaphore)

    async def acquire(self) -> None:
        await self._semaphore.acquire()
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self._semaphore.release()


class InvalidOutput(ValueError):
    """The block returned something its block type cannot produce (DESIGN §6)."""

    code = "invalid_output"
