"""Bounded shutdown: a process asked to stop (SIGTERM, SIGINT) is gone within its grace
(`RUNLEDGER_SHUTDOWN_GRACE`, default 15 s), whatever its dependencies are doing.

The stop goes in steps, each bounded by a share of the grace counted from the signal:
requests in flight get until REQUESTS, the work in hand (a projector's batch, a worker's
passes) until WORK, leaving consumer groups until LEFT, closing clients (producer,
consumers, database pools, the fold pool) until CLOSED. What has not finished by then is
cancelled and left behind, because nothing a process holds is needed once it is gone: a
projector's uncommitted batch is folded again by the partition's next owner from the
checkpoint; an append that was never acknowledged was never promised; a pass in flight is
run again by the worker that takes its run (its fact's id is deterministic: it counts once).

A thread blocked in a call nobody can interrupt (SQLite waiting out another process's
lock, a block function that hangs) would keep the interpreter from exiting: `leave()`,
the last step of every process, waits for such threads until FINISHED and then ends the
process without them (exit code 0: it stopped as asked). If the stop itself overruns the
grace, a watchdog logs every thread's stack and ends the process with exit code 1.
"""
from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Awaitable, Callable

log = logging.getLogger("runledger.shutdown")

DEFAULT_GRACE = 15.0
# Shares of the grace by which each step is over, counted from the signal.
REQUESTS = 0.35  # requests in flight are answered (uvicorn's graceful shutdown timeout)
WORK = 0.6  # the work in hand: a projector's batch commits, a worker's passes finish
LEFT = 0.75  # consumers leave their groups (the others rebalance at once), heartbeats are forgotten
CLOSED = 0.9  # producers flush, pools and connections close
FINISHED = 0.97  # threads still blocked are left behind; at 1.0 the watchdog ends the process
OVERRUN_EXIT = 1
ANYIO_WORKER = "AnyIO worker thread"  # anyio's name for the threads of `to_thread.run_sync`


class Grace:
    """One process's shutdown clock: started by the first SIGTERM/SIGINT (`on_signals`, which
    also arms the watchdog) or `begin()`; before that, shares are counted from now (a command
    ending on its own)."""

    def __init__(self, seconds: float = DEFAULT_GRACE):
        self.seconds = seconds
        self._began: float | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def begun(self) -> bool:
        return self._began is not None

    def begin(self) -> None:
        """The stop was asked for: the clock starts (once)."""
        if self._began is None:
            self._began = time.monotonic()

    def left(self, share: float) -> float:
        """Seconds until `share` of the grace has passed since the stop began."""
        began = self._began if self._began is not None else time.monotonic()
        return max(0.0, began + share * self.seconds - time.monotonic())

    def own_threads(self) -> None:
        """Give the running loop a default executor this grace can shut down at the end
        (`asyncio.to_thread` runs there). Call it first, before anything runs in a thread."""
        self._executor = ThreadPoolExecutor(thread_name_prefix="asyncio")
        asyncio.get_running_loop().set_default_executor(self._executor)

    def on_signals(self, stop: Callable[[], None]) -> None:
        """On SIGTERM or SIGINT: start the clock and call `stop()` (which asks the process's
        parts to stop and returns at once). A second signal ends the process now."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._signalled, sig, stop)

    def _signalled(self, sig: signal.Signals, stop: Callable[[], None]) -> None:
        if self.begun:
            log.warning("%s again: leaving now, without finishing the stop", sig.name)
            _exit(OVERRUN_EXIT)
        log.info("%s: stopping within %g s (RUNLEDGER_SHUTDOWN_GRACE)", sig.name, self.seconds)
        self.begin()
        watchdog = threading.Timer(self.seconds, self._overran)  # ends the process if the stop hangs
        watchdog.daemon = True
        watchdog.start()
        stop()

    async def wait(self, work: Awaitable, what: str, share: float) -> bool:
        """Await `work` (a coroutine or a task) until `share` of the grace; if it has not
        finished then, cancel it and go on without it. True if it finished without error
        (an error is logged, not raised: the stop goes on)."""
        task = asyncio.ensure_future(work)
        task.add_done_callback(_retrieve)
        await asyncio.wait({task}, timeout=self.left(share))
        if not task.done():
            task.cancel()
            log.warning("%s: not done %.1f s into the stop; left behind", what, self.seconds * share)
            return False
        if task.cancelled():
            return False
        if task.exception() is not None:
            error = task.exception()
            log.warning("%s: %s: %s", what, type(error).__name__, error)
            return False
        return True

    async def stop(self, task: asyncio.Task, ask: Callable[[], None], what: str) -> None:
        """Stop a long-running task: `ask()` it to finish its work in hand, wait until WORK;
        past that it is cancelled (its work is left to the next owner) and gets until LEFT
        to leave (its consumer group, its heartbeat)."""
        ask()
        if not await self.wait(task, f"{what}: the work in hand", WORK) and not task.done():
            await self.wait(task, f"{what}: leaving", LEFT)

    async def run(self, task: asyncio.Task, ask: Callable[[], None], what: str) -> None:
        """A process's long-running task, until it ends (its error is raised) or a SIGTERM or
        SIGINT comes; then it is stopped as `stop` does."""
        asked = asyncio.Event()
        self.on_signals(asked.set)
        signalled = asyncio.create_task(asked.wait())
        await asyncio.wait({task, signalled}, return_when=asyncio.FIRST_COMPLETED)
        signalled.cancel()
        if task.done():
            task.result()
            return
        await self.stop(task, ask, what)

    async def leave(self, code: int = 0) -> None:
        """The last step of a process's main coroutine. Cancels what still runs and waits for
        it until FINISHED; returns if nothing is left (the interpreter then exits as usual),
        else ends the process with `code` without what is left."""
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + self.left(FINISHED)
        while True:
            busy = [t.get_name() for t in tasks if not t.done()] + _busy_threads()
            if not busy:
                return
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.05)
        log.warning("stopped, leaving behind what still runs: %s", ", ".join(busy))
        _exit(code)

    def _overran(self) -> None:
        log.error("still running %g s after the stop began (RUNLEDGER_SHUTDOWN_GRACE): leaving now; "
                  "every thread's stack follows", self.seconds)
        _flush()
        faulthandler.dump_traceback(all_threads=True)
        _exit(OVERRUN_EXIT)


def _busy_threads() -> list[str]:
    """Threads that would keep the interpreter from exiting (non-daemon, alive). AnyIO's worker
    threads (Starlette runs sync functions there) are not: idle, they end with the main task."""
    main = threading.main_thread()
    return [t.name for t in threading.enumerate()
            if t is not main and not t.daemon and t.is_alive() and t.name != ANYIO_WORKER]


def _retrieve(task: asyncio.Future) -> None:
    """A task left behind may fail later: its error is not worth a 'never retrieved' warning."""
    if not task.cancelled():
        task.exception()


def _flush() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def _exit(code: int) -> None:
    _flush()
    os._exit(code)
