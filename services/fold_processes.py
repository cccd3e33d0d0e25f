"""What every process of the projector's fold pool does first (services/bootstrap.py), and
how the pool is shut down.

Two things an API process needs from its fold children:
- They yield the CPU to it. A fold child scoring a heavy document is runnable for
  seconds; on a machine with few cores the kernel would share a core between it and
  the API's event loop, and every request would queue behind its time slices. At
  `NICENESS` the scheduler runs the API first and gives the fold what is left.
- They end with it. A spawned child waits on its pipe for work; when its parent is
  SIGKILLed (or exits without shutting the pool down) nothing tells it to go, and it
  would outlive the server. A daemon thread watches the parent and exits with it.
"""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

from projections.domain.consensus import assignment

from .shutdown import CLOSED, Grace

log = logging.getLogger("runledger.projector")

NICENESS = 10  # added to the parent's: CFS weight ~110 against the API's 1024
PARENT_CHECK_SECONDS = 1.0
IDLE_EXIT = 1.0  # seconds an idle fold process is given to leave when the pool shuts down


def started() -> None:
    """The pool's initializer."""
    assignment.warm_up()  # scipy's solver: imported before the first batch, not in it
    try:
        os.nice(NICENESS)
    except OSError:  # not permitted here: the fold still runs, only at the API's priority
        pass
    exit_with_parent()


def exit_with_parent() -> None:
    """From now on, this process exits when its parent does (a daemon thread watches)."""
    parent = os.getppid()
    threading.Thread(target=_exit_with_parent, args=(parent,), name="parent-watch", daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)  # orphaned: reparented to init, the server is gone


async def shut_down(pool: ProcessPoolExecutor, grace: Grace, share: float = CLOSED) -> None:
    """Stop the pool and wait (until `share` of the grace) until its processes and its thread
    are gone, so the interpreter's exit waits for nothing and the pool's semaphores are
    released (`shutdown(wait=False)` left them to the resource tracker, which warned of them).
    Idle processes leave when told; one still folding is terminated after IDLE_EXIT seconds:
    the runtime closes after its projector stopped, so that fold's batch will never commit
    here (the partition's next owner folds it again)."""
    done = threading.Event()

    def shut() -> None:
        pool.shutdown(wait=True, cancel_futures=True)
        done.set()

    threading.Thread(target=shut, name="fold-pool-shutdown", daemon=True).start()
    if await _until(done, min(IDLE_EXIT, grace.left(share))):
        return
    children = multiprocessing.active_children()  # the pool's processes: the only ones we start
    if children:
        log.warning("terminating %d fold process(es) still folding a batch that will not commit", len(children))
    for child in children:
        child.terminate()
    await _until(done, grace.left(share))


async def _until(event: threading.Event, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not event.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return event.is_set()
