"""Backends for every suite: the embedded default always; Kafka and PostgreSQL started for
real by the project's scripts (tests/infra.py) when RUNLEDGER_TEST_BACKENDS names them."""
from __future__ import annotations

import os
import uuid

import pytest

BACKENDS = set(filter(None, os.environ.get("RUNLEDGER_TEST_BACKENDS", "embedded").split(",")))


def _log_params():
    params = ["embedded"]
    if "kafka" in BACKENDS:
        params.append(pytest.param("kafka", marks=pytest.mark.kafka))
    return params


def _store_params():
    params = ["sqlite"]
    if "postgres" in BACKENDS:
        params.append(pytest.param("postgres", marks=pytest.mark.postgres))
    return params


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory):
    from tests.infra import kafka_broker

    with kafka_broker(tmp_path_factory.mktemp("kafka")) as broker:
        yield broker


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory):
    from tests.infra import postgres_server

    with postgres_server(tmp_path_factory.mktemp("pg")) as url:
        yield url


def make_log(kind: str, request, tmp_path, partitions: int = 6):
    if kind == "embedded":
        from events.sqlite_log import SqliteEventLog
        return SqliteEventLog(tmp_path / "log.db", partitions=partitions)
    from events.kafka_log import KafkaEventLog
    broker = request.getfixturevalue("kafka_bootstrap")
    return KafkaEventLog(broker.bootstrap, topic=f"test-{uuid.uuid4().hex[:12]}", partitions=partitions)


@pytest.fixture(params=_log_params())
async def event_log(request, tmp_path):
    log = make_log(request.param, request, tmp_path)
    await log.start()
    yield log
    await log.close()


async def fresh_database_url(kind: str, request, tmp_path) -> str:
    """A new, empty database per test: a SQLite file, or a fresh PostgreSQL database."""
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'readmodel.db'}"
    return await new_postgres_database(request.getfixturevalue("postgres_url"))


async def new_postgres_database(url: str) -> str:
    """A new, empty database on the PostgreSQL server of `url`; its URL."""
    import asyncpg

    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return url.rsplit("/", 1)[0] + "/" + name


def server_backends() -> list:
    """Parameters for a test run on the embedded default and, when both are enabled, on
    Kafka + PostgreSQL (marked, so `-m "not kafka"` leaves it out)."""
    params = ["embedded"]
    if {"kafka", "postgres"} <= BACKENDS:
        params.append(pytest.param("kafka+postgres", marks=[pytest.mark.kafka, pytest.mark.postgres]))
    return params


async def served_on(request, tmp_path, env: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """`env` and the `serve` arguments for a server on `request.param` (one of
    server_backends()): as it is on the embedded default; on Kafka + PostgreSQL a fresh
    database, its own topic, and the projector in the server's process."""
    if request.param != "kafka+postgres":
        return dict(env), []
    return {**env, "RUNLEDGER_DATABASE_URL": await fresh_database_url("postgres", request, tmp_path),
            "RUNLEDGER_KAFKA_BOOTSTRAP": request.getfixturevalue("kafka_bootstrap").bootstrap,
            "RUNLEDGER_TOPIC": f"served-{uuid.uuid4().hex[:10]}"}, ["--with-projector"]


@pytest.fixture(params=_store_params())
async def database_url(request, tmp_path):
    return await fresh_database_url(request.param, request, tmp_path)


@pytest.fixture
async def engine(database_url):
    """The read model as production builds it: SQLite created in place, PostgreSQL by migrations."""
    from projections.store.database import make_engine, prepare_schema

    engine = make_engine(database_url)
    await prepare_schema(database_url, engine)
    yield engine
    await engine.dispose()
