"""The read-model version a process reads and projects into, following the active pointer.

Every API replica and projector process holds one `ActiveReadModel`. It polls the
control store's pointer (`projections.runtime.versions`) every `poll` seconds; when another
version became active it switches, so that no reader ever sees an answer older than
one it saw before:

1. the in-process projector (if any) is paused between batches;
2. the new version must have reached every checkpoint the old one holds, and the old
   one must have stopped moving (other projector processes have followed) for
   `settle` seconds;
3. reads and the projector move to the new version at once, the projector resuming
   each partition from the new version's stored checkpoints (a compare-and-set, so a
   rebuild still projecting the same partitions is safe).

Step 2 is bounded by `switch_timeout`: a switch never blocks forever (it logs and goes
on when the new version does not catch up, e.g. its rebuild died).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sqlalchemy.ext.asyncio import AsyncEngine

from projections.runtime import checkpoints, versions
from projections.store.database import DEFAULT_TIMEOUTS, StoreTimeouts

log = logging.getLogger("runledger.follow")


class ActiveReadModel:
    def __init__(self, base_url: str, control: AsyncEngine, poll: float = 1.0, settle: float = 1.5,
                 switch_timeout: float = 60.0, projection: str = "main", timeouts: StoreTimeouts = DEFAULT_TIMEOUTS):
        self.base_url = base_url
        self.timeouts = timeouts
        self.control = control
        self.poll = poll
        self.settle = settle
        self.switch_timeout = switch_timeout
        self.projection = projection
        self.version = 0
        self._engine: AsyncEngine | None = None
        self._engines: dict[int, AsyncEngine] = {}

    @property
    def engine(self) -> AsyncEngine:
        """The engine of the version to read now: resolve it per request, never keep it."""
        return self._engine

    async def open(self, base_engine: AsyncEngine) -> ActiveReadModel:
        """Start on the active version. `base_engine` is version 1's (already prepared)."""
        self._engines[1] = base_engine
        version = await versions.active_version(self.control)
        self._engine, self.version = await self._engine_for(version), version
        return self

    async def follow(self, projector=None) -> None:
        """Poll the pointer forever (a task); switch when it moves."""
        while True:
            await asyncio.sleep(self.poll)
            try:
                version = await versions.active_version(self.control)
                if version != self.version:
                    await self.switch(version, projector)
            except asyncio.CancelledError:
                raise
            except Exception:  # a transient control-store error: try again at the next poll
                log.exception("following the read-model version pointer")

    async def switch(self, version: int, projector=None) -> None:
        new = await self._engine_for(version)
        old, old_version = self._engine, self.version
        log.info("read model: switching from version %s to %s", old_version, version)

        def switched() -> None:
            self._engine, self.version = new, version

        if projector is not None:
            await projector.switch_engine(new, ready=lambda: self._wait_caught_up(old, new), switched=switched)
        else:
            await self._wait_caught_up(old, new)
            switched()
        log.info("read model: now on version %s", version)
        asyncio.get_running_loop().call_later(30, lambda: asyncio.ensure_future(self._retire(old_version)))

    async def _wait_caught_up(self, old: AsyncEngine, new: AsyncEngine) -> None:
        deadline = time.monotonic() + self.switch_timeout
        target = await self._checkpoints(old)
        while time.monotonic() < deadline:
            if await self._reached(new, target, deadline):
                await asyncio.sleep(self.settle)
                latest = await self._checkpoints(old)
                if latest == target:
                    return
                target = latest  # a projector elsewhere still wrote to the old version
        log.warning("read model: the new version did not catch up within %ss; switching anyway",
                    self.switch_timeout)

    async def _reached(self, engine: AsyncEngine, target: dict[int, int], deadline: float) -> bool:
        while time.monotonic() < deadline:
            reached = await self._checkpoints(engine)
            if all(reached.get(p, 0) >= offset for p, offset in target.items()):
                return True
            await asyncio.sleep(0.05)
        return False

    async def _checkpoints(self, engine: AsyncEngine) -> dict[int, int]:
        async with engine.connect() as conn:
            return await checkpoints.load(conn, self.projection)

    async def _engine_for(self, version: int) -> AsyncEngine:
        if version not in self._engines:
            location = versions.locate(self.base_url, version)
            engine = versions.open_engine(location, self.timeouts)
            await versions.prepare(location, engine)
            self._engines[version] = engine
        return self._engines[version]

    async def _retire(self, version: int) -> None:
        """Close a version's pool once requests that started on it are long done
        (version 1's engine belongs to the caller, which may share it as the control store)."""
        if version != self.version and version != 1:
            engine = self._engines.pop(version, None)
            if engine is not None:
                await engine.dispose()

    async def close(self) -> None:
        for version, engine in list(self._engines.items()):
            if version != 1:
                with contextlib.suppress(Exception):
                    await engine.dispose()
        self._engines.clear()
