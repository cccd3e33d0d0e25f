"""The composition root: builds the log, the read model and the projector from settings."""
from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from events.log import EventLog
from projections.domain.consensus import assignment
from projections.runtime.follow import ActiveReadModel
from projections.runtime.projector import Projector
from projections.store import control as control_store
from projections.store.database import make_engine, prepare_schema

from . import fold_processes
from .datadir import secure_data_dir
from .settings import Settings
from .shutdown import CLOSED, Grace
from .storage_alarm import StorageAlarm
from .telemetry import Telemetry
from .verifications import Verifications


@dataclass
class Runtime:
    settings: Settings
    log: EventLog
    base_engine: AsyncEngine  # read-model version 1's location; `engine` is the active version's
    projector: Projector | None
    control: AsyncEngine | None = None  # keys, idempotency (projections/store/control.py); may be `engine`
    read_model: ActiveReadModel | None = None
    following: asyncio.Task | None = None
    telemetry: Telemetry | None = None  # this process's Prometheus registry (services/telemetry.py)
    storage: StorageAlarm = field(default_factory=StorageAlarm)  # full-disk refusals, for health
    grace: Grace = field(default_factory=Grace)  # this process's shutdown clock (services/shutdown.py)
    verifications: Verifications | None = None  # verification jobs (services/verifications.py)

    @property
    def engine(self) -> AsyncEngine:
        """The active read-model version's engine. Resolve it for each use, never keep it:
        a rebuild switches it (projections/runtime/follow.py)."""
        return self.read_model.engine if self.read_model is not None else self.base_engine

    async def close(self) -> None:
        """Close what this runtime opened, side by side, each until CLOSED of the shutdown
        grace: what has not closed by then (a producer flushing to a broker that is gone, a
        pool waiting on a locked database) is left behind (services/shutdown.py)."""
        if self.following is not None:
            self.following.cancel()
            await self.grace.wait(self.following, "following the read-model version", CLOSED)
        steps = {"closing the log": self.log.close(), "closing the read model": self._close_engines()}
        if self.projector is not None and self.projector.fold_pool is not None:
            steps["stopping the fold processes"] = fold_processes.shut_down(self.projector.fold_pool, self.grace)
        if self.verifications is not None:
            steps["stopping verification jobs"] = self.verifications.close(self.grace)
        await asyncio.gather(*(self.grace.wait(step, what, CLOSED) for what, step in steps.items()))

    async def _close_engines(self) -> None:
        if self.read_model is not None:
            await self.read_model.close()
        await self.base_engine.dispose()
        if self.control is not None and self.control is not self.base_engine:
            await self.control.dispose()


def build_log(settings: Settings) -> EventLog:
    if settings.embedded:
        from events.sqlite_log import SqliteEventLog
        return SqliteEventLog(settings.log_path, partitions=settings.partitions,
                              busy_timeout=settings.sqlite_busy_timeout)
    from events.kafka_log import KafkaEventLog
    return KafkaEventLog(
        settings.kafka_bootstrap, topic=settings.topic, partitions=settings.partitions,
        replication_factor=settings.replication_factor, timeout=settings.kafka_timeout,
        min_insync_replicas=settings.min_insync_replicas,
    )


async def start_runtime(settings: Settings, log: EventLog | None = None, with_projector: bool | None = None,
                        grace: Grace | None = None) -> Runtime:
    secure_data_dir(settings)
    log = log or build_log(settings)
    await log.start()
    engine = make_engine(settings.read_model_url, timeouts=settings.store_timeouts)
    await prepare_schema(settings.read_model_url, engine)
    control = await open_control_store(settings, engine)
    read_model = await ActiveReadModel(settings.read_model_url, control, timeouts=settings.store_timeouts).open(engine)
    run_projector = settings.projector if with_projector is None else with_projector
    if run_projector:
        assignment.warm_up()  # scipy's solver, imported on first use elsewhere: before any batch here
    telemetry = Telemetry()
    projector = Projector(log, read_model.engine, observer=telemetry.observer(),
                          heartbeat_interval=settings.heartbeat_interval,
                          fold_pool=fold_pool(settings), catch_up=settings.catch_up(),
                          live_cache=settings.live_cache()) if run_projector else None
    runtime = Runtime(settings, log, engine, projector, control, read_model, telemetry=telemetry,
                      grace=grace or Grace(settings.shutdown_grace),
                      verifications=Verifications(settings, control, lambda: read_model.version))
    runtime.following = asyncio.create_task(read_model.follow(projector))
    return runtime


def fold_pool(settings: Settings) -> ProcessPoolExecutor | None:
    """The projector folds (and scores) in its own process(es), so the consensus engine
    never holds the GIL of a process serving the API. Spawned, not forked: the API
    process has threads. Its processes run below the API's CPU priority and end with it
    (services/fold_processes.py)."""
    if settings.fold_processes <= 0:
        return None
    return ProcessPoolExecutor(settings.fold_processes, mp_context=multiprocessing.get_context("spawn"),
                               initializer=fold_processes.started)


async def open_control_store(settings: Settings, read_model: AsyncEngine) -> AsyncEngine:
    """PostgreSQL: the read model's database, default schema (migrations made the tables),
    through an engine of its own (the read model's may point into a version's schema).
    Embedded: `control.db`, created here, adopting keys an older install kept in the read model."""
    control = make_engine(settings.control_url, timeouts=settings.store_timeouts)
    if not settings.control_url.startswith("sqlite"):
        return control
    await control_store.create_control_schema(control)
    if settings.read_model_url.startswith("sqlite"):
        await control_store.adopt_legacy_keys(read_model, control)
    return control
