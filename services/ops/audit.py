"""What the audit CLI shows, as plain data: a run's history with its counters, the live
log, dead letters (and their retry), and projection status with lag in seconds."""
from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from events.codec import UndecodableEvent, decode, from_dict
from events.envelope import trace_id
from events.log import EventLog, Position, Record, partition_for
from projections.domain.fold import apply
from projections.runtime import batch as batch_module
from projections.runtime.event_bodies import body_of
from projections.store.tables import dead_letters as dead_letters_table, event_index

from ..api.status import projection_status

COUNTERS = ("status", "document_count", "completed_document_count", "error_count")


async def history(engine: AsyncEngine, run_id: str, log: EventLog | None = None) -> list[dict[str, Any]]:
    """Each event of the run in log order, the projector's verdict, its trace id, and the
    run's counters before -> after it (refolded here from the stored events, so they are
    re-derived, not read). A rejected event's trace is read from `log` (its body is not
    indexed); without a log it shows none."""
    query = (select(event_index).where(event_index.c.aggregate_id == run_id).order_by(event_index.c.offset))
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    traces = [await _trace_of(log, row) for row in rows]
    return await asyncio.to_thread(_fold_steps, rows, traces)  # consensus is CPU: off the event loop


async def _trace_of(log: EventLog | None, row) -> str | None:
    if row.body is None and log is None:
        return None
    return trace_id((await body_of(log, row)).get("trace"))


def _fold_steps(rows, traces: list[str | None]) -> list[dict[str, Any]]:
    steps, state = [], None
    for row, trace in zip(rows, traces):
        before = _counters(state)
        if row.accepted:  # a rejected event left the state as it was (and has no indexed body)
            state = apply(state, from_dict(row.body)).state
        steps.append({"position": Position(row.partition, row.offset).token(), "occurred_at": row.occurred_at,
                      "type": row.type, "producer": row.producer, "accepted": row.accepted, "reason": row.reason,
                      "trace_id": trace, "before": before, "after": _counters(state)})
    return steps


def _counters(state) -> dict[str, Any] | None:
    return None if state is None else {name: getattr(state, name) for name in COUNTERS}


def describe_change(before: dict | None, after: dict | None) -> str:
    if after is None:
        return ""
    if before is None:
        return "created: " + ", ".join(f"{k}={v}" for k, v in after.items())
    changed = [f"{k} {before[k]} -> {after[k]}" for k in COUNTERS if before[k] != after[k]]
    return ", ".join(changed) or "(unchanged)"


async def tail(log: EventLog, run_id: str | None, from_start: bool, limit: int | None) -> AsyncIterator[dict]:
    """Events as they are appended (or from the start), decoded; poison shown as such."""
    consumer = log.consumer()
    partitions = [partition_for(run_id, log.partitions)] if run_id else list(range(log.partitions))
    consumer.assign(partitions)
    ends = await log.end_offsets()
    for partition in partitions:
        consumer.seek(partition, 0 if from_start else ends.get(partition, 0))
    shown = 0
    try:
        while limit is None or shown < limit:
            for record in await consumer.poll(timeout=1.0):
                line = _line(record)
                if run_id and line.get("aggregate_id") != run_id:
                    continue
                yield line
                shown += 1
                if limit is not None and shown >= limit:
                    return
    finally:
        await consumer.close()


def _line(record: Record) -> dict[str, Any]:
    line: dict[str, Any] = {"position": record.position.token(), "aggregate_id": record.key}
    try:
        event = decode(record.value)
    except UndecodableEvent as exc:
        return {**line, "occurred_at": None, "type": "(undecodable)", "producer": "", "error": str(exc)}
    return {**line, "occurred_at": event.occurred_at, "type": event.type, "producer": event.producer,
            "org_id": event.org_id, "event_id": str(event.event_id), "trace_id": trace_id(event.trace),
            "payload": event.payload.model_dump(mode="json")}


async def dead_letters(engine: AsyncEngine, position: str | None = None,
                       limit: int | None = None) -> list[dict[str, Any]]:
    """The dead letters in log order (`limit`: the first ones only)."""
    query = select(dead_letters_table).order_by(dead_letters_table.c.partition, dead_letters_table.c.offset)
    if limit is not None:
        query = query.limit(limit)
    if position is not None:
        at = Position.parse(position)
        query = query.where(dead_letters_table.c.partition == at.partition, dead_letters_table.c.offset == at.offset)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [{"position": Position(r.partition, r.offset).token(), "projection": r.projection, "key": r.key,
             "reason": r.reason, "value": bytes(r.value).decode("utf-8", "replace")} for r in rows]


async def retry_dead_letters(engine: AsyncEngine, position: str | None = None) -> list[dict[str, Any]]:
    """Decode each dead letter again; one that now decodes is projected (in one transaction
    with removing it). It is folded *now*, on top of its run's later events; a rebuild
    folds it at its own position, so `runledger verify --run` tells whether the order
    mattered for that run."""
    outcomes = []
    for letter in await dead_letters(engine, position):
        outcomes.append({"position": letter["position"], "outcome": await _retry(engine, letter)})
    return outcomes


async def _retry(engine: AsyncEngine, letter: dict[str, Any]) -> str:
    at = Position.parse(letter["position"])
    async with engine.begin() as conn:
        row = (await conn.execute(select(dead_letters_table).where(
            dead_letters_table.c.projection == letter["projection"], dead_letters_table.c.partition == at.partition,
            dead_letters_table.c.offset == at.offset))).first()
        if row is None:
            return "gone (retried elsewhere)"
        try:
            decode(bytes(row.value))
        except UndecodableEvent as exc:
            return f"still undecodable: {exc}"
        await conn.execute(delete(dead_letters_table).where(
            dead_letters_table.c.projection == row.projection, dead_letters_table.c.partition == at.partition,
            dead_letters_table.c.offset == at.offset))
        batch = batch_module.Batch(row.projection, [Record(at.partition, at.offset, row.key or "", bytes(row.value), 0)])
        batch.decode_all()
        await batch_module.load(conn, batch)
        batch.fold()
        await batch_module.save(conn, batch)
    if batch.failures:
        return f"quarantined its aggregate: {next(iter(batch.failures.values()))}"
    verdicts = [row for rows in batch.index_rows.values() for row in rows]
    if not verdicts:
        return "parked (its aggregate is quarantined)"
    return "projected: " + ("accepted" if verdicts[0]["accepted"] else f"rejected ({verdicts[0]['reason']})")


async def status(runtime, sample: float = 1.0) -> dict[str, Any]:
    """The figures of /v1/ledger/projections, plus lag in seconds (age of the oldest record
    not yet applied) and events/s (checkpoint progress over `sample` seconds)."""
    first = await projection_status(runtime)
    started = time.monotonic()
    await asyncio.sleep(sample)
    second = await projection_status(runtime)
    elapsed = time.monotonic() - started
    before = {(p["name"], q["partition"]): q["checkpoint"] for p in first["projections"] for q in p["partitions"]}
    now_ms = time.time() * 1000
    for projection in second["projections"]:
        for p in projection["partitions"]:
            p["events_per_second"] = (p["checkpoint"] - before.get((projection["name"], p["partition"]), 0)) / elapsed
            p["lag_seconds"] = 0.0
            if p["lag"]:
                oldest = await runtime.log.read(p["partition"], p["checkpoint"], 1)
                if oldest:
                    p["lag_seconds"] = max(0.0, (now_ms - oldest[0].timestamp_ms) / 1000)
    return {**second, "read_model_version": runtime.read_model.version}
