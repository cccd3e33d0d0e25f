"""Yardstick: the `eventsourcing` library (9.x) projecting the same events on the same PostgreSQL.

The events are first stored in an eventsourcing `Application` (untimed): one aggregate
per run (its creation stands for RunCreated, then one `Recorded` event per later event,
same payloads), plus the block and the experiment. Timed: a `ProjectionRunner` whose
`Projection` folds counters per aggregate (events, passes) into a
`PostgresTrackingRecorder` subclass, the counters row and the tracking record in one
transaction per event, which is the library's contract for a tracking projection.
"""
from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import InfrastructureFactory, Tracking
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.projection import Projection, ProjectionRunner
from eventsourcing.sqlite import SQLiteTrackingRecorder
from eventsourcing.utils import Environment
from psycopg.sql import SQL, Identifier

from events.envelope import Event


class Stream(Aggregate):
    def __init__(self, type: str, payload: dict[str, Any]) -> None:  # noqa: A002 - the event's field
        self.type = type

    @event("Recorded")
    def record(self, type: str, payload: dict[str, Any]) -> None:  # noqa: A002
        self.type = type


class Ledger(Application[Any]):
    pass


class CountersView(PostgresTrackingRecorder):
    def __init__(self, datastore, **kwargs) -> None:
        super().__init__(datastore, **kwargs)
        table = Identifier(self.datastore.schema, "es_counters")
        self.sql_create_statements.append(SQL(
            "CREATE TABLE IF NOT EXISTS {0} (stream_id uuid PRIMARY KEY, events bigint NOT NULL, "
            "passes bigint NOT NULL)").format(table))
        self.upsert = SQL(
            "INSERT INTO {0} VALUES (%(id)s, 1, %(passes)s) ON CONFLICT (stream_id) DO UPDATE "
            "SET events = {0}.events + 1, passes = {0}.passes + %(passes)s").format(table)
        self.total = SQL("SELECT COALESCE(SUM(events), 0) AS n FROM {0}").format(table)

    def count(self, stream_id, is_pass: bool, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(self.upsert, {"id": stream_id, "passes": int(is_pass)}, prepare=True)
            self._insert_tracking(curs, tracking)

    def counted(self) -> int:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self.total)
            return int(curs.fetchone()["n"])


class SqliteCountersView(SQLiteTrackingRecorder):
    """The same view for the embedded comparison (eventsourcing's SQLite module)."""

    upsert = ("INSERT INTO es_counters VALUES (?, 1, ?) ON CONFLICT (stream_id) DO UPDATE "
              "SET events = events + 1, passes = passes + excluded.passes")

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(),
                "CREATE TABLE IF NOT EXISTS es_counters (stream_id TEXT PRIMARY KEY, events INTEGER NOT NULL, "
                "passes INTEGER NOT NULL)"]

    def count(self, stream_id, is_pass: bool, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(self.upsert, (str(stream_id), int(is_pass)))
            self._insert_tracking(curs, tracking)

    def counted(self) -> int:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute("SELECT COALESCE(SUM(events), 0) FROM es_counters")
            return int(curs.fetchone()[0])


class Counters(Projection[CountersView]):
    name = "counters"

    def process_event(self, domain_event, tracking: Tracking) -> None:
        self.view.count(domain_event.originator_id, getattr(domain_event, "type", "") == "DocumentPassCompleted",
                        tracking)


def sqlite_environment(path: str) -> dict[str, str]:
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path}


def environment(url: str) -> dict[str, str]:
    parts = urlsplit(url.replace("postgresql+asyncpg", "postgresql"))
    return {"PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_DBNAME": parts.path.lstrip("/"),
            "POSTGRES_HOST": parts.hostname, "POSTGRES_PORT": str(parts.port), "POSTGRES_USER": parts.username,
            "POSTGRES_PASSWORD": parts.password or ""}


def store(events: list[Event], env: dict[str, str]) -> int:
    """Untimed: the events as aggregates of an eventsourcing application; the last notification id."""
    app = Ledger(env)
    streams: dict[str, Stream] = {}
    for e in events:
        payload = e.payload.model_dump(mode="json")
        if e.aggregate_id not in streams:
            streams[e.aggregate_id] = Stream(e.type, payload)
        else:
            streams[e.aggregate_id].record(e.type, payload)
    for stream in streams.values():  # one save per aggregate: one giant pipelined save can deadlock psycopg
        app.save(stream)
    last = app.recorder.max_notification_id()
    app.close()
    return last


def project(env: dict[str, str], last_id: int, expected: int, timeout: float = 600) -> float:
    """Seconds for a ProjectionRunner to count every event up to notification `last_id`."""
    if env["PERSISTENCE_MODULE"].endswith("sqlite"):
        return _pull(env, last_id, expected)
    started = time.perf_counter()
    with ProjectionRunner(application_class=Ledger, projection_class=Counters, view_class=CountersView,
                          env=env) as runner:
        runner.wait(last_id, timeout=timeout)  # re-raises an error of the processing thread
        elapsed = time.perf_counter() - started
        if runner.view.counted() != expected:
            raise RuntimeError(f"eventsourcing counted {runner.view.counted()} events, expected {expected}")
        return elapsed


def _pull(env: dict[str, str], last_id: int, expected: int, page: int = 500) -> float:
    """SQLite recorders have no subscriptions (ProjectionRunner refuses them): the same
    Projection and tracking view, fed by the loop ProjectionRunner's thread runs, paging
    through `select_notifications` instead of a subscription."""
    started = time.perf_counter()
    app = Ledger(env)
    view = InfrastructureFactory.construct(env=Environment(Counters.name, env)).tracking_recorder(SqliteCountersView)
    projection = Counters(view)
    position = view.max_tracking_id(app.name) or 0
    while position < last_id:
        for notification in app.recorder.select_notifications(position, page, inclusive_of_start=False):
            projection.process_event(app.mapper.to_domain_event(notification), Tracking(app.name, notification.id))
            position = notification.id
    elapsed = time.perf_counter() - started
    counted = view.counted()
    app.close()
    if counted != expected:
        raise RuntimeError(f"eventsourcing counted {counted} events, expected {expected}")
    return elapsed
