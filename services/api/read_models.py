"""Read-model versions as an operator sees them: each version's status and how far it is
behind the log (a rebuild's progress), and the version this replica serves. For
`GET /v1/ledger/read-models` and the `runledger_read_model_*` gauges of /metrics."""
from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

from projections.runtime import checkpoints, versions

from ..bootstrap import Runtime


async def read_model_figures(runtime: Runtime) -> dict:
    ends = await runtime.log.end_offsets()
    rows = await versions.list_versions(runtime.control)
    listed = []
    for row in rows:
        entry = {"version": row.version, "status": row.status, "created_at": row.created_at,
                 "activated_at": row.activated_at,
                 "location": versions.locate(runtime.settings.read_model_url, row.version).describe()}
        if row.status != versions.DROPPED:
            applied = await _checkpoints_of(runtime, row.version)
            entry["applied"] = sum(applied.values())
            entry["lag"] = sum(max(0, end - applied.get(p, 0)) for p, end in ends.items())
        listed.append(entry)
    active = next((r.version for r in rows if r.status == versions.ACTIVE), 1)
    return {"active_version": active, "serving_version": runtime.read_model.version, "versions": listed}


async def _checkpoints_of(runtime: Runtime, version: int) -> dict[int, int]:
    if version == runtime.read_model.version:
        engine, own = runtime.engine, False
    else:
        engine, own = versions.open_engine(versions.locate(runtime.settings.read_model_url, version)), True
    try:
        async with engine.connect() as conn:
            return await checkpoints.load(conn, "main")
    except SQLAlchemyError:  # a version whose tables are not there yet (or any more)
        return {}
    finally:
        if own:
            await engine.dispose()
