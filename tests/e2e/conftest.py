from __future__ import annotations

import uuid

import httpx
import pytest

from tests.conftest import BACKENDS, fresh_database_url
from tests.server import ServerProcess

KEY = "rl_test_key_default_org"


def _server_params():
    params = ["embedded"]
    if "postgres" in BACKENDS:  # the log stays embedded, the read model is PostgreSQL
        params.append(pytest.param("embedded+postgres", marks=pytest.mark.postgres))
    if {"kafka", "postgres"} <= BACKENDS:
        params.append(pytest.param("kafka+postgres", marks=[pytest.mark.kafka, pytest.mark.postgres]))
    return params


@pytest.fixture(params=_server_params())
async def server_env(request, tmp_path) -> dict[str, str]:
    env = {"RUNLEDGER_BOOTSTRAP_KEY": KEY, "RUNLEDGER_WAIT_TIMEOUT": "30"}
    if request.param.endswith("+postgres"):
        env["RUNLEDGER_DATABASE_URL"] = await fresh_database_url("postgres", request, tmp_path)
    if request.param == "kafka+postgres":
        env["RUNLEDGER_KAFKA_BOOTSTRAP"] = request.getfixturevalue("kafka_bootstrap").bootstrap
        env["RUNLEDGER_TOPIC"] = f"e2e-{uuid.uuid4().hex[:10]}"
    return env


@pytest.fixture
def server(server_env, tmp_path):
    args = [] if "RUNLEDGER_KAFKA_BOOTSTRAP" not in server_env else ["--with-projector"]
    with ServerProcess(tmp_path / "server", server_env, args) as process:
        yield process


def http(server: ServerProcess, key: str = KEY) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Api-Key": key}, timeout=60)
