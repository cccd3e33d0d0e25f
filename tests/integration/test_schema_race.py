"""Several processes starting at once on one fresh embedded data directory (two
`runledger project` processes, or a server and a projector) all create the SQLite
schemas they need: none dies of a table the other made in between."""
from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import asyncio, sys
from projections.store import control, database
async def main(directory):
    read_model = database.make_engine(f"sqlite+aiosqlite:///{directory}/readmodel.db")
    control_store = database.make_engine(f"sqlite+aiosqlite:///{directory}/control.db")
    await database.create_schema(read_model)
    await control.create_control_schema(control_store)
    await read_model.dispose(); await control_store.dispose()
asyncio.run(main(sys.argv[1]))
"""

PROCESSES = 6


@pytest.mark.parametrize("round_", range(3))
def test_processes_starting_at_once_on_a_fresh_directory_all_create_the_schema(tmp_path, round_):
    starters = [subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path)], stderr=subprocess.PIPE, text=True)
                for _ in range(PROCESSES)]
    failures = [err for p in starters if (err := p.communicate(timeout=120)[1]) and p.returncode != 0]
    assert failures == []
