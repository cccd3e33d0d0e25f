"""The composition root: builds the log, the read model and the projector from settings."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from events.log import EventLog
from projections.database import make_engine, prepare_schema
from projections.projector import Projector

from .settings import Settings


@dataclass
class Runtime:
    settings: Settings
    log: EventLog
    engine: AsyncEngine
    projector: Projector | None

    async def close(self) -> None:
        await self.log.close()
        await self.engine.dispose()


def build_log(settings: Settings) -> EventLog:
    if settings.embedded:
        from events.sqlite_log import SqliteEventLog
        return SqliteEventLog(settings.log_path, partitions=settings.partitions)
    from events.kafka_log import KafkaEventLog
    return KafkaEventLog(
        settings.kafka_bootstrap, topic=settings.topic, partitions=settings.partitions,
        replication_factor=settings.replication_factor,
    )


async def start_runtime(settings: Settings, log: EventLog | None = None, with_projector: bool | None = None) -> Runtime:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log = log or build_log(settings)
    await log.start()
    engine = make_engine(settings.read_model_url)
    await prepare_schema(settings.read_model_url, engine)
    run_projector = settings.projector if with_projector is None else with_projector
    projector = Projector(log, engine) if run_projector else None
    return Runtime(settings, log, engine, projector)
