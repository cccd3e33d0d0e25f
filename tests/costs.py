"""What a request costs, counted without timing anything (the bounded-cost contract, docs/api.md).

`counting()` counts, while it is open, in this process:

- `statements`: SQL statements executed through SQLAlchemy's async connections;
- `rows`: rows those statements returned (every statement's result is buffered by the
  async driver anyway, so counting them does not change what is read);
- `json_values` / `json_bytes`: JSON values decoded from the store (JSON columns, and
  the read columns the views decode) and their size in bytes: a decoded run or
  document state is what a bound on "values decoded" is about;
- `log_reads` / `log_records`: reads of the event log (`EventLog.read`) and the records
  they returned.

Use it around an in-process request (httpx.ASGITransport) on a run with a long history,
and assert the documented bound: a regression that makes a request read the history
fails the test whatever the machine's speed.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterator

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass
class Cost:
    statements: int = 0
    rows: int = 0
    json_values: int = 0
    json_bytes: int = 0
    log_reads: int = 0
    log_records: int = 0
    sql: list[str] = field(default_factory=list)  # the statements, for a failing assertion's message
    rows_of: list[int] = field(default_factory=list)  # rows each statement returned, as `sql`

    def without(self, *tables: str) -> Cost:
        """This cost less the statements that name any of `tables`: a caller's session or
        key looked up again when its few seconds of cache ran out is not the page's cost."""
        kept = [(sql, rows) for sql, rows in zip(self.sql, self.rows_of) if not any(t in sql for t in tables)]
        return Cost(len(kept), sum(rows for _, rows in kept), self.json_values, self.json_bytes, self.log_reads,
                    self.log_records, [sql for sql, _ in kept], [rows for _, rows in kept])

    def __str__(self) -> str:
        return (f"{self.statements} statements, {self.rows} rows, {self.json_values} JSON values "
                f"({self.json_bytes} bytes), {self.log_reads} log reads ({self.log_records} records)")


class _CountingOrjson:
    """Stands in for the `orjson` module where the store decodes JSON: counts each `loads`."""

    def __init__(self, cost: Cost):
        self._cost = cost

    def loads(self, value: Any) -> Any:
        self._cost.json_values += 1
        self._cost.json_bytes += len(value) if isinstance(value, (str, bytes, bytearray, memoryview)) else 0
        return orjson.loads(value)

    def __getattr__(self, name: str) -> Any:
        return getattr(orjson, name)


DECODING_MODULES = ("projections.store.database", "projections.store.views", "projections.store.metric_rows",
                    "projections.store.live_views")
"""Modules whose `orjson.loads` is store decoding (JSON columns; stored read columns)."""


@contextlib.contextmanager
def counting(*log_classes: type) -> Iterator[Cost]:
    """Count this process's SQL rows, JSON decodes and log reads while open. `log_classes`:
    EventLog adapters whose `read` to count (default: both of ours)."""
    import importlib

    from events.kafka_log import KafkaEventLog
    from events.sqlite_log import SqliteEventLog

    cost = Cost()
    open_ = [True]
    patches: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, value: Any) -> None:
        patches.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    execute = AsyncConnection.execute

    async def counted_execute(self, statement, *args, **kwargs):
        result = await execute(self, statement, *args, **kwargs)
        if not open_:  # a statement that began inside the window and ended after it: not counted
            return result
        cost.statements += 1
        cost.sql.append(str(statement)[:200])
        if not result.returns_rows:
            cost.rows_of.append(0)
            return result
        frozen = result.freeze()
        cost.rows += len(frozen.data)
        cost.rows_of.append(len(frozen.data))
        return frozen()

    patch(AsyncConnection, "execute", counted_execute)
    for module_name in DECODING_MODULES:
        patch(importlib.import_module(module_name), "orjson", _CountingOrjson(cost))
    for cls in log_classes or (SqliteEventLog, KafkaEventLog):
        read = cls.read

        async def counted_read(self, partition, from_offset, max_records=500, _read=read, **kwargs):
            records = await _read(self, partition, from_offset, max_records, **kwargs)
            if not open_:
                return records
            cost.log_reads += 1
            cost.log_records += len(records)
            return records

        patch(cls, "read", counted_read)
    try:
        yield cost
    finally:
        open_.clear()
        for owner, name, original in reversed(patches):
            setattr(owner, name, original)
