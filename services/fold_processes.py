"""What every process of the projector's fold pool does first (services/bootstrap.py).

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

import os
import threading
import time

NICENESS = 10  # added to the parent's: CFS weight ~110 against the API's 1024
PARENT_CHECK_SECONDS = 1.0


def started() -> None:
    """The pool's initializer."""
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
