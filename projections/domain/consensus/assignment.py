"""The optimal assignment (scipy's `linear_sum_assignment`), imported on first use.

`scipy.optimize` takes ~0.5 s to import (its package imports every solver), and this
package is imported by everything that touches the read model (the store's label keys
normalize values with it), so importing it up front made every `runledger` command pay
that half second, `runledger keys list` included. The projector's processes import it at
start (`warm_up`), so no batch waits for it.
"""
from __future__ import annotations

from typing import Any

_solve = None


def linear_sum_assignment(matrix: Any, maximize: bool = False):
    """scipy.optimize.linear_sum_assignment(matrix, maximize): (rows, columns)."""
    solve = _solve if _solve is not None else warm_up()
    return solve(matrix, maximize=maximize)


def warm_up():
    """Import the solver now (once per process); returns it."""
    global _solve
    if _solve is None:
        from scipy.optimize import linear_sum_assignment as solve

        _solve = solve
    return _solve
