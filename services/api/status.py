"""Projection status, lag and health, for /v1/ledger/projections, /healthz and /metrics.

Every figure comes from the log and the read model (checkpoints, dead letters,
quarantine, projector heartbeats), so every API replica tells the same truth whether
or not it runs a projector itself. Health is red when:
- a partition has lag and no live projector holds it (a dead or missing projector:
  no heartbeat within the TTL), or the embedded projector task is down;
- a projector reports a stopped partition;
- a run is quarantined (a deterministic failure waits for a fix and `quarantine retry`);
- the storage is full: a write was refused for want of space within the last minute, or
  a projector is retrying a batch its store refused for want of space.
"""
from __future__ import annotations

from datetime import datetime, timezone

from projections.runtime import heartbeat, quarantine
from projections.runtime.storage_full import STORAGE_FULL
from projections.store import views

from ..bootstrap import Runtime

MAIN = "main"


async def projection_status(runtime: Runtime) -> dict:
    ends = await runtime.log.end_offsets()
    ttl = runtime.settings.heartbeat_ttl
    async with runtime.engine.connect() as conn:
        stored = await views.projection_checkpoints(conn)
        dead = await views.dead_letter_counts(conn)
        members = await heartbeat.members(conn, ttl)
        quarantined = await quarantine.list_quarantined(conn)
    members = [_jsonable(m) for m in _with_local(runtime, members)]
    holders = {p: m["member_id"] for m in members if m["alive"] and m["projection"] == MAIN for p in m["partitions"]}
    stops = {p: m["detail"] for m in members if m["alive"] and m["state"] == "stopped" for p in m["partitions"]}
    projections = []
    for name in sorted(set(stored) | {MAIN}):
        offsets = stored.get(name, {})
        partitions = []
        for partition in sorted(ends):
            applied = offsets.get(partition, 0)
            main = name == MAIN
            partitions.append({
                "partition": partition, "checkpoint": applied, "end_offset": ends[partition],
                "lag": max(0, ends[partition] - applied),
                "lag_seconds": await _lag_seconds(runtime, partition, applied, ends[partition]) if main else None,
                "held_by": holders.get(partition) if main else None,
                "stopped": _stopped(runtime, partition, stops) if main else None,
            })
        projections.append({"name": name, "partitions": partitions,
                            "lag": sum(p["lag"] for p in partitions), "dead_letters": dead.get(name, 0)})
    status = {"projections": projections, "projectors": members,
              "quarantined": [q.as_json() for q in quarantined],
              "in_process_projector": runtime.projector is not None}
    found = health_problems(runtime, status)
    return {"status": "degraded" if found else "ok", "problems": [text for _, text in found],
            "reasons": sorted({reason for reason, _ in found}), **status}


def health_problems(runtime: Runtime, status: dict) -> list[tuple[str, str]]:
    """(reason, text) of each problem: the reason is a fixed code anyone may see
    (`public`), the text is for admins."""
    main = next(p for p in status["projections"] if p["name"] == MAIN)
    problems = []
    local = runtime.projector
    if local is not None and getattr(local, "down", None):
        problems.append(("projector_down", f"the in-process projector is down: {local.down}"))
    orphans = [p["partition"] for p in main["partitions"] if p["lag"] and p["held_by"] is None]
    if orphans:
        problems.append(("no_projector", f"partitions {orphans} have lag and no live projector (no heartbeat within "
                                         f"{runtime.settings.heartbeat_ttl:g} s)"))
    stopped = [p["partition"] for p in main["partitions"] if p["stopped"]]
    if stopped:
        problems.append(("partition_stopped", f"partitions {stopped} stopped"))
    if status["quarantined"]:
        problems.append(("run_quarantined", f"{len(status['quarantined'])} run(s) quarantined"))
    return problems + storage_problems(runtime, status)


def storage_problems(runtime: Runtime, status: dict) -> list[tuple[str, str]]:
    """A full disk: a write this process answered 503 `storage_full` lately, or a live
    projector retrying a batch its store refused for want of space."""
    found = []
    refused = runtime.storage.recent()
    if refused:
        found.append(("storage_full", f"storage full: {refused}; writes answer 503 storage_full until space "
                                      "is freed"))
    for m in status["projectors"]:
        if m["alive"] and m["state"] == "retrying" and STORAGE_FULL in (m["detail"] or ""):
            found.append(("storage_full", f"projector {m['member_id']} cannot write the read model: {m['detail']}"))
    return found


def _with_local(runtime: Runtime, members: list[dict]) -> list[dict]:
    """This process's own projector, from memory: alive while its task runs, even when a
    held lock keeps its heartbeat from being written."""
    local = runtime.projector
    if local is None:
        return members
    mine = local.member.member_id
    others = [m for m in members if m["member_id"] != mine]
    values = local.heartbeat_values()
    now = datetime.now(timezone.utc)
    me = {"member_id": mine, "projection": local.name, "host": local.member.host, "pid": local.member.pid,
          "started_at": local.member.started_at, "beat_at": now, "age_s": 0.0,
          "alive": not getattr(local, "down", None) and getattr(local, "running", False), **values}
    return [me, *others]


def _jsonable(member: dict) -> dict:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in member.items()}


def _stopped(runtime: Runtime, partition: int, stops: dict[int, str]) -> str | None:
    local = runtime.projector.partitions.get(partition) if runtime.projector else None
    return (local.stopped if local else None) or stops.get(partition)


async def _lag_seconds(runtime: Runtime, partition: int, checkpoint: int, end: int) -> float | None:
    """How long the oldest unapplied event has waited (0 when caught up)."""
    if checkpoint >= end:
        return 0.0
    try:
        oldest = await runtime.log.read(partition, checkpoint, 1)
    except Exception:  # noqa: BLE001 - a figure for operators, not worth failing health over
        return None
    if not oldest or not oldest[0].timestamp_ms or oldest[0].timestamp_ms < 0:
        return None
    return max(0.0, round(datetime.now(timezone.utc).timestamp() - oldest[0].timestamp_ms / 1000, 3))


def public(status: dict) -> dict:
    """What anyone may see: the verdict and, when degraded, the kinds of problem
    (`storage_full`, `run_quarantined`...); no offsets, ids or error texts."""
    return {"status": status["status"], "reasons": status["reasons"]} if status["reasons"] else \
        {"status": status["status"]}
