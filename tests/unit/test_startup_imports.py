"""A `runledger` command that computes no consensus does not import scipy's solvers (~0.5 s
of every command's start: `runledger keys list` took 2.0 s, 1.4 s without); the projector's
processes import them at start (services/bootstrap.py, services/fold_processes.py), before
any batch. Fresh interpreters: the test process has long imported everything."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def fresh(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_command_line_and_the_store_import_no_solver_until_one_is_needed():
    assert fresh("import sys, services.cli, services.bootstrap, projections.store.database, "
                 "projections.domain.consensus; print('scipy.optimize' in sys.modules)") == "False"
    assert fresh("import sys\n"
                 "from projections.domain.consensus.assignment import linear_sum_assignment\n"
                 "rows, cols = linear_sum_assignment([[0.1, 0.9], [0.8, 0.2]], maximize=True)\n"
                 "print(rows.tolist(), cols.tolist(), 'scipy.optimize' in sys.modules)") == "[0, 1] [1, 0] True"
