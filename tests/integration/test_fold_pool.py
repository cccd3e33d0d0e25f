"""The projector's fold pool, as the API process lives with it (issue 8: the API's p99
while the worst document is scored): what comes back from a fold process is prepared
rows, not the fold's objects (unpickling those held the API's GIL for half a second);
fold processes run below the API's CPU priority, and end when the server is killed; a
server that stops shuts its pool down (issue 18.9): a fold still running is terminated,
and no semaphore is left for the resource tracker to warn of."""
from __future__ import annotations

import io
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from events.codec import encode
from events.log import Record
from projections.runtime.batch import Batch
from projections.runtime.projector import fold_elsewhere
from tests.builders import RunScript
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
FOLD_STATE_MODULES = ("projections.domain.state", "events.envelope", "events.catalogue", "pydantic")


class _Classes(pickle.Unpickler):
    """An unpickler that notes every class the pickle asks it to build."""

    def __init__(self, data: bytes):
        super().__init__(io.BytesIO(data))
        self.seen: set[str] = set()

    def find_class(self, module: str, name: str):
        self.seen.add(f"{module}.{name}")
        return super().find_class(module, name)


def test_a_pool_fold_sends_back_rows_not_the_fold_state():
    script = RunScript(run_id="run_trip", docs=2, n=3, block_type="extract")
    outputs = [{"total": 10 + i, "lines": [{"sku": "a", "qty": i}]} for i in range(3)]
    events = [script.created(), *[script.passed(d, i, outputs[i]) for d in script.doc_ids for i in range(3)]]
    records = [Record(0, offset, e.aggregate_id, encode(e), 1_700_000_000_000) for offset, e in enumerate(events)]
    batch = Batch("main", records)
    batch.decode_all()

    back = _Classes(pickle.dumps(fold_elsewhere(batch)))
    returned = back.load()

    assert returned.writes is not None and returned.writes.aggregates  # the rows are there...
    built_from_fold_state = sorted(c for c in back.seen if c.startswith(FOLD_STATE_MODULES))
    assert built_from_fold_state == []  # ...and nothing the loop would rebuild object by object


def test_fold_processes_run_below_the_api_and_end_with_it():
    server = subprocess.Popen([sys.executable, "-c", _SERVER], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        child = int(server.stdout.readline())
        assert _niceness(child) > _niceness(server.pid)
        server.send_signal(signal.SIGKILL)  # no shutdown: nothing tells the pool to stop
        server.wait(30)
        wait_for(lambda: _alive(child), lambda alive: not alive, timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_a_stopping_server_shuts_its_pool_down_even_while_a_fold_runs():
    stopping = subprocess.run([sys.executable, "-c", _STOPPING], cwd=ROOT, capture_output=True, text=True,
                              timeout=60)
    assert stopping.returncode == 0, stopping.stderr
    folding, after = stopping.stdout.split()
    assert folding == "alive" and after == "gone"  # the fold was running, and its process is gone
    assert "leaked semaphore" not in stopping.stderr, stopping.stderr


_STOPPING = """
import asyncio, multiprocessing, time
from services.bootstrap import fold_pool
from services.fold_processes import shut_down
from services.settings import Settings
from services.shutdown import Grace

async def main():
    pool = fold_pool(Settings(fold_processes=1))
    pool.submit(time.sleep, 600)  # a fold that will not end by itself
    time.sleep(1.0)
    print("alive" if multiprocessing.active_children() else "none")
    grace = Grace(4.0)
    grace.begin()
    await shut_down(pool, grace)
    print("gone" if not multiprocessing.active_children() else "still there")

asyncio.run(main())
"""


_SERVER = """
import os, sys, time
from services.bootstrap import fold_pool
from services.settings import Settings
pool = fold_pool(Settings(fold_processes=1))
print(pool.submit(os.getpid).result(), flush=True)
time.sleep(600)
"""


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _niceness(pid: int) -> int:
    return int(_stat(pid)[16])  # field 19 of proc(5), counted after the command name


def _alive(pid: int) -> bool:
    try:
        return _stat(pid)[0] != "Z"  # a zombie has exited (its new parent may not reap it at once)
    except FileNotFoundError:
        return False
