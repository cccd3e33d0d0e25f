"""docker-compose.yml: the production shape of the design, wired with settings the code reads."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from services.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
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
    return {name: s for name, s in services.items() if s.get("command", [None])[0] in RUNLEDGER_IMAGE_COMMANDS}


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
    """path -> argv: `docker compose config -q` when the plugin is installed; otherwise
    compose-go (the same loader) built from scripts/compose-check with the machine's Go."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return lambda path: ["docker", "compose", "-f", str(path), "config", "-q"]
    if shutil.which("go") is None:
        return None
    binary = ROOT / ".cache" / "compose-check"
    built = subprocess.run(["go", "build", "-o", str(binary), "."], cwd=ROOT / "scripts" / "compose-check",
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    return lambda path: [str(binary), str(path)]


@pytest.fixture(scope="module")
def compose_config():
    command = compose_config_command()
    if command is None:
        pytest.skip("neither `docker compose` nor a Go toolchain to build compose-go is installed")
    return command


def test_docker_compose_accepts_the_file(compose_config):
    # `config` only parses, interpolates and validates: no Docker engine needed.
    result = subprocess.run(compose_config(COMPOSE), capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_the_compose_check_refuses_a_broken_file(compose_config, tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("image: postgres:16", "imagee: postgres:16", 1))
    result = subprocess.run(compose_config(broken), capture_output=True, text=True, cwd=ROOT)
    assert result.returncode != 0 and "imagee" in result.stdout + result.stderr
