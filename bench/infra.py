"""Kafka and PostgreSQL for one bench run, started with the project's scripts (tests/infra.py)."""
from __future__ import annotations

import itertools
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import asyncpg

from tests.infra import kafka_broker, postgres_server

_names = itertools.count(1)


@dataclass
class Infra:
    kafka: str  # bootstrap "127.0.0.1:<port>"
    postgres: str  # SQLAlchemy URL of the server's first database

    async def new_database(self, label: str) -> str:
        """A fresh, empty database on the same server; its SQLAlchemy URL."""
        name = f"bench_{label}_{next(_names)}"
        conn = await asyncpg.connect(self.postgres.replace("postgresql+asyncpg", "postgresql"))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.postgres.rsplit("/", 1)[0] + "/" + name


@contextmanager
def servers(workdir: Path) -> Iterator[Infra]:
    """Both servers on loopback, always stopped on exit."""
    with ExitStack() as stack:
        broker = stack.enter_context(kafka_broker(workdir / "kafka"))
        url = stack.enter_context(postgres_server(workdir / "pg"))
        yield Infra(broker.bootstrap, url)
