"""A write the ledger cannot store because its storage is full answers 503 `storage_full`
with `Retry-After`, never 500: the fault is the disk's, the request was fine, and the
same request succeeds once an operator frees space (docs/operations.md, "A full disk").

Which stores: the embedded log's append (SQLite), the control store's idempotency and
key writes, the read model (SQLite or PostgreSQL): whatever `is_storage_full` finds in
the exception's chain (projections/runtime/storage_full.py). Reads keep working. The
answer itself is rendered by services/api/errors.py (`storage_full`)."""
from __future__ import annotations

from starlette.types import Scope

from projections.runtime.storage_full import is_storage_full

CODE = "storage_full"
RETRY_AFTER = 5
MESSAGE = ("the ledger's storage is full: this write could not be stored; retry later "
           "(reads still work; an operator must free space)")


def refused_for_space(exc: BaseException, scope: Scope) -> bool:
    """True if a full disk is behind `exc`; the refusal is then remembered for `/healthz`
    (services/storage_alarm.py) by the app's runtime."""
    if not is_storage_full(exc):
        return False
    runtime = getattr(getattr(scope.get("app"), "state", None), "runtime", None)
    if runtime is not None:
        runtime.storage.raised(exc)
    return True
