"""docker-compose.yml: the production shape of the design, wired with settings the code reads;
docker-compose.cluster.yml: the same on a 3-broker Kafka cluster (an override of the first)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from services.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
CLUSTER = ROOT / "docker-compose.cluster.yml"
RUNLEDGER_IMAGE_COMMANDS = {"serve", "project", "migrate"}


def read_by_settings() -> set[str]:
    return set(re.findall(r"RUNLEDGER_[A-Z_]+", (ROOT / "services" / "settings.py").read_text()))


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def ours(services: dict) -> dict[str, dict]:
    """The services running the runledger image (serve, project, migrate)."""
    return {name: s for name, s in services.items() if (s.get("command") or [None])[0] in RUNLEDGER_IMAGE_COMMANDS}


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} with nothing set, as `docker compose config` would do."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))


def test_every_runledger_variable_in_compose_is_one_the_code_reads(services):
    known = read_by_settings()
    assert {"RUNLEDGER_KAFKA_BOOTSTRAP", "RUNLEDGER_DATABASE_URL"} <= known
    for name, service in ours(services).items():
        env = service["environment"]
        unknown = {key for key in env if key.startswith("RUNLEDGER_")} - known
        assert not unknown, f"{name} sets {unknown}, which services/settings.py never reads"


def test_our_services_run_on_kafka_and_postgres_with_settings_that_parse(services):
    for name, service in ours(services).items():
        env = {key: interpolate(value) for key, value in service["environment"].items()}
        settings = Settings.from_env(env)
        assert settings.kafka_bootstrap == "kafka:9092", name
        assert settings.database_url.startswith("postgresql+asyncpg://") and "@postgres:5432/" in settings.database_url
        assert settings.partitions >= 2 and not settings.embedded


def test_the_services_the_design_needs_exist_with_healthchecks(services):
    assert services["kafka"]["image"] == "apache/kafka:4.1.2"
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert services["postgres"]["image"].startswith("postgres:16")
    for name in ("kafka", "postgres", "api"):
        assert services[name]["healthcheck"]["test"], f"{name} has no healthcheck"
    for name in ("kafka", "postgres"):
        assert services[name]["volumes"], f"{name} keeps no data across restarts"

    by_command = {}
    for name, service in ours(services).items():
        by_command.setdefault(service["command"][0], []).append((name, service))
    [(_, migrate)] = by_command["migrate"]
    assert migrate["restart"] == "no"
    [(_, api)] = by_command["serve"]
    assert api["command"][:3] == ["serve", "--host", "0.0.0.0"]
    projectors = sum(s.get("deploy", {}).get("replicas", 1) for _, s in by_command["project"])
    assert projectors >= 2


def test_api_and_projectors_wait_for_healthy_infrastructure_and_the_migration(services):
    for name, service in ours(services).items():
        if service["command"][0] == "migrate":
            continue
        needs = service["depends_on"]
        assert needs["kafka"]["condition"] == needs["postgres"]["condition"] == "service_healthy", name
        assert needs["migrate"]["condition"] == "service_completed_successfully", name


def test_the_api_can_run_several_replicas(services):
    api = services["api"]
    assert all(not str(port).startswith("8000:") for port in api.get("ports", [])), "a fixed host port allows one replica"


def test_the_image_builds_from_this_repository(compose):
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile and "pip install ." in dockerfile
    assert compose["x-runledger"]["build"] == "."


def compose_config_command():
    """(paths, as_json) -> argv: `docker compose config` when the plugin is installed; otherwise
    compose-go (the same loader) built from scripts/compose-check with the machine's Go."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return lambda paths, as_json=False: ["docker", "compose", *(a for p in paths for a in ("-f", str(p))), "config",
                                             *(["--format", "json"] if as_json else ["-q"])]
    if shutil.which("go") is None:
        return None
    binary = ROOT / ".cache" / "compose-check"
    built = subprocess.run(["go", "build", "-o", str(binary), "."], cwd=ROOT / "scripts" / "compose-check",
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    return lambda paths, as_json=False: [str(binary), *(["-json"] if as_json else []), *map(str, paths)]


@pytest.fixture(scope="module")
def compose_config():
    command = compose_config_command()
    if command is None:
        pytest.skip("neither `docker compose` nor a Go toolchain to build compose-go is installed")
    return command


def test_docker_compose_accepts_the_file(compose_config):
    # `config` only parses, interpolates and validates: no Docker engine needed.
    result = subprocess.run(compose_config([COMPOSE]), capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_the_compose_check_refuses_a_broken_file(compose_config, tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("image: postgres:16", "imagee: postgres:16", 1))
    result = subprocess.run(compose_config([broken]), capture_output=True, text=True, cwd=ROOT)
    assert result.returncode != 0 and "imagee" in result.stdout + result.stderr


def test_every_process_has_its_shutdown_grace_before_docker_kills_it(services):
    """Docker sends SIGKILL `stop_grace_period` (default 10 s) after SIGTERM: a process needs
    its whole RUNLEDGER_SHUTDOWN_GRACE (services/shutdown.py) before that."""
    for name, service in ours(services).items():
        if service["command"][0] == "migrate":
            continue
        grace = Settings.from_env({k: interpolate(v) for k, v in service["environment"].items()}).shutdown_grace
        period = float(str(service.get("stop_grace_period", "10s")).removesuffix("s"))
        assert period >= grace + 3, f"{name}: stop_grace_period {period:g} s, shutdown grace {grace:g} s"


# -- the 3-broker cluster ------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster(compose_config) -> dict:
    """docker-compose.yml with docker-compose.cluster.yml over it, merged as `docker compose
    -f docker-compose.yml -f docker-compose.cluster.yml config` merges them."""
    result = subprocess.run(compose_config([COMPOSE, CLUSTER], as_json=True), capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"]


def test_docker_compose_accepts_the_cluster_shape(compose_config):
    result = subprocess.run(compose_config([COMPOSE, CLUSTER]), capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_the_cluster_is_three_kraft_nodes_that_know_each_other(cluster):
    brokers = {name: s for name, s in cluster.items() if s.get("image", "").startswith("apache/kafka")}
    assert sorted(brokers) == ["kafka", "kafka-2", "kafka-3"]
    envs = [s["environment"] for s in brokers.values()]
    assert sorted(e["KAFKA_NODE_ID"] for e in envs) == ["1", "2", "3"]
    voters = {e["KAFKA_CONTROLLER_QUORUM_VOTERS"] for e in envs}
    assert voters == {"1@kafka:9093,2@kafka-2:9093,3@kafka-3:9093"}  # one quorum of three: one may be lost
    assert len({e["CLUSTER_ID"] for e in envs}) == 1
    for name, service in brokers.items():
        env = service["environment"]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == \
            env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
        assert service["healthcheck"]["test"] and service["volumes"], name
    assert len({v["source"] for s in brokers.values() for v in s["volumes"]}) == 3  # a volume each


def test_runledger_uses_every_broker_and_replicates_its_topic_three_times(cluster):
    for name, service in ours(cluster).items():
        settings = Settings.from_env(service["environment"])
        assert sorted(settings.kafka_bootstrap.split(",")) == ["kafka-2:9092", "kafka-3:9092", "kafka:9092"], name
        assert (settings.replication_factor, settings.min_insync_replicas) == (3, 2), name
        if service["command"][0] != "migrate":  # the migration needs PostgreSQL alone
            needs = service["depends_on"]
            assert all(needs[b]["condition"] == "service_healthy" for b in ("kafka", "kafka-2", "kafka-3")), name
