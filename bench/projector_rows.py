"""Table rows for the projector: Kafka -> PostgreSQL (consensus off and on) beside the
`eventsourcing` library and bare aiokafka on the same topic and server; the embedded
default (SQLite log -> SQLite) on the same workload."""
from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from events.kafka_log import KafkaEventLog
from events.sqlite_log import SqliteEventLog

from . import bare_kafka
from .infra import Infra
from .projection import catch_up
from .table import Figure, Row
from .workload import Workload

TOPIC = "bench.projector"
PARTITIONS = 6


async def kafka_rows(infra: Infra, workload: Workload, repeat: int, say) -> list[Row]:
    n = len(workload)
    log = KafkaEventLog(infra.kafka, topic=TOPIC, partitions=PARTITIONS)
    await log.start()
    try:
        await log.append(workload.messages)
        off, on, es, bare = (Figure("events/s") for _ in range(4))
        for i in range(repeat):
            url = await infra.new_database("off")
            off.values.append(n / await catch_up(log, url, n, consensus_on=False, group=f"bench-off-{i}"))
            url = await infra.new_database("on")
            on.values.append(n / await catch_up(log, url, n, consensus_on=True, group=f"bench-on-{i}"))
            es.values.append(n / await asyncio.to_thread(_eventsourcing, await infra.new_database("es"), workload))
            bare.values.append(n / await bare_kafka.consume(infra.kafka, TOPIC, PARTITIONS, n))
            say(f"projector rep {i + 1}: off {off.values[-1]:,.0f}, on {on.values[-1]:,.0f}, "
                f"eventsourcing {es.values[-1]:,.0f}, bare aiokafka {bare.values[-1]:,.0f} events/s")
    finally:
        await log.close()
    path = "projector Kafka -> PostgreSQL"
    return [Row(f"{path}, consensus off", off, "eventsourcing 9.5 ProjectionRunner, counters", es),
            Row(f"{path}, consensus off", off, "bare aiokafka read + orjson decode", bare),
            Row(f"{path}, consensus on", on, "eventsourcing 9.5 ProjectionRunner, counters", es)]


def _eventsourcing(url: str, workload: Workload) -> float:
    from . import eventsourcing_fold

    env = eventsourcing_fold.environment(url)
    last_id = eventsourcing_fold.store(workload.events, env)
    return eventsourcing_fold.project(env, last_id, len(workload))


async def embedded_rows(workload: Workload, repeat: int, say) -> list[Row]:
    n = len(workload)
    off, on, es = Figure("events/s"), Figure("events/s"), Figure("events/s")
    for i in range(repeat):
        for figure, consensus_on in ((off, False), (on, True)):
            with tempfile.TemporaryDirectory(prefix="rl-bench-") as tmp:
                log = SqliteEventLog(Path(tmp) / "log.db", partitions=PARTITIONS)
                await log.start()
                try:
                    await log.append(workload.messages)
                    url = f"sqlite+aiosqlite:///{Path(tmp) / 'readmodel.db'}"
                    figure.values.append(n / await catch_up(log, url, n, consensus_on=consensus_on,
                                                            group=f"bench-{i}"))
                finally:
                    await log.close()
        if _eventsourcing_installed(es):
            with tempfile.TemporaryDirectory(prefix="rl-bench-es-") as tmp:
                es.values.append(n / _eventsourcing_sqlite(Path(tmp) / "es.db", workload))
        say(f"embedded rep {i + 1}: off {off.values[-1]:,.0f}, on {on.values[-1]:,.0f}, "
            f"eventsourcing on SQLite {es.text()}")
    yard = "eventsourcing 9.5 Projection on SQLite, counters"
    return [Row("projector embedded (SQLite log -> SQLite), consensus off", off, yard, es),
            Row("projector embedded (SQLite log -> SQLite), consensus on", on, yard, es)]


def _eventsourcing_installed(figure: Figure) -> bool:
    try:
        import eventsourcing  # noqa: F401
    except ImportError:
        figure.note = "eventsourcing not installed (pip install -e '.[bench]')"
        return False
    return True


def _eventsourcing_sqlite(path: Path, workload: Workload) -> float:
    from . import eventsourcing_fold

    env = eventsourcing_fold.sqlite_environment(str(path))
    last_id = eventsourcing_fold.store(workload.events, env)
    return eventsourcing_fold.project(env, last_id, len(workload))
