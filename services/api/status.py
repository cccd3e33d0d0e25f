"""Projection status and lag, for /v1/ledger/projections, /healthz and /metrics."""
from __future__ import annotations

from projections import views

from ..bootstrap import Runtime


async def projection_status(runtime: Runtime) -> dict:
    ends = await runtime.log.end_offsets()
    async with runtime.engine.connect() as conn:
        stored = await views.projection_checkpoints(conn)
        dead = await views.dead_letter_counts(conn)
    local = runtime.projector.partitions if runtime.projector else {}
    projections = []
    for name in sorted(set(stored) | {"main"}):
        offsets = stored.get(name, {})
        partitions = []
        for partition in sorted(ends):
            applied = offsets.get(partition, 0)
            mine = local.get(partition) if name == "main" else None
            partitions.append({
                "partition": partition, "checkpoint": applied, "end_offset": ends[partition],
                "lag": max(0, ends[partition] - applied), "stopped": mine.stopped if mine else None,
            })
        projections.append({"name": name, "partitions": partitions,
                            "lag": sum(p["lag"] for p in partitions), "dead_letters": dead.get(name, 0)})
    return {"projections": projections, "in_process_projector": runtime.projector is not None}


def prometheus_text(status: dict) -> str:
    lines = [
        "# HELP runledger_projection_lag Events on the log not yet applied by the projection.",
        "# TYPE runledger_projection_lag gauge",
    ]
    for proj in status["projections"]:
        for p in proj["partitions"]:
            lines.append(f'runledger_projection_lag{{projection="{proj["name"]}",partition="{p["partition"]}"}} {p["lag"]}')
    lines += ["# HELP runledger_projection_stopped 1 when a partition stopped on a bug.",
              "# TYPE runledger_projection_stopped gauge"]
    for proj in status["projections"]:
        for p in proj["partitions"]:
            stopped = 1 if p["stopped"] else 0
            lines.append(f'runledger_projection_stopped{{projection="{proj["name"]}",partition="{p["partition"]}"}} {stopped}')
    lines += ["# HELP runledger_dead_letters_total Poison records set aside.",
              "# TYPE runledger_dead_letters_total counter"]
    for proj in status["projections"]:
        lines.append(f'runledger_dead_letters_total{{projection="{proj["name"]}"}} {proj["dead_letters"]}')
    return "\n".join(lines) + "\n"
