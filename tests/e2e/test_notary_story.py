"""The auditor's story, on the embedded default and on Kafka + PostgreSQL (issue 19):
take a digest; export a run's proof; `runledger audit check` passes offline (no server, no
data directory) against the digest; a proof edited by hand fails and names the record;
one record of the log is edited behind the ledger's back (the SQLite file itself; on
Kafka, a copy of the topic re-written by a test producer with that record changed) and
`runledger verify --run` exits non-zero naming `partition:offset`; a proof exported after
the edit fails against the earlier digest; a later digest is proven consistent with the
earlier one while nothing was edited, and inconsistent once the edited log is what the
ledger's tree is built from (a rebuild; on Kafka, a projector pointed at the copy)."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from retab import Retab

from tests.conftest import fresh_database_url, served_on, server_backends
from tests.e2e.conftest import KEY, http
from tests.server import create_key
from tests.e2e.test_audit_cli import _completed_run
from tests.e2e.test_rebuild import cli
from tests.server import ServerProcess


@pytest.fixture(params=server_backends())
async def ledger(request, tmp_path):
    env, args = await served_on(request, tmp_path, {"RUNLEDGER_BOOTSTRAP_KEY": KEY, "RUNLEDGER_WAIT_TIMEOUT": "30"})
    with ServerProcess(tmp_path / "server", env, args) as server:
        server.backend = request.param
        server.request = request
        yield server


def audit(server, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`runledger audit ...` on the server's settings (its data directory, database, topic)."""
    return subprocess.run([sys.executable, "-m", "services.cli", "audit", *args, "--data-dir", str(server.data_dir)],
                          env={**server.env, **(env or {})}, capture_output=True, text=True, timeout=300)


def offline_check(where: Path, *args: str) -> subprocess.CompletedProcess:
    """`runledger audit check` as an auditor runs it: another directory, no runledger settings at all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNLEDGER_")}
    return subprocess.run([sys.executable, "-m", "services.cli", "audit", "check", *args], cwd=where, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_auditors_story(ledger, tmp_path):
    server, desk = ledger, tmp_path / "auditor"
    desk.mkdir()
    sdk = Retab(api_key=KEY, base_url=server.url, max_retries=0)
    run_id = _completed_run(server, sdk)

    key = audit(server, "public-key")
    assert key.returncode == 0, key.stderr
    public_key = key.stdout.strip()
    assert len(base64.b64decode(public_key)) == 32
    assert audit(server, "digest", "--out", str(desk / "d1.json")).returncode == 0
    exported = audit(server, "export", run_id, "--out", str(desk / "b1.json"))
    assert exported.returncode == 0, exported.stderr

    # Offline: no server, no data directory, no database; the key pinned.
    passed = offline_check(desk, "b1.json", "--digest", "d1.json", "--public-key", public_key)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert f"records of run {run_id}, each included" in passed.stdout and "verified b1.json" in passed.stdout
    assert not (desk / ".runledger").exists()

    bundle = json.loads((desk / "b1.json").read_text())
    target = bundle["records"][3]  # a pass of the run
    edited = json.loads((desk / "b1.json").read_text())
    edited["records"][3]["value"] = base64.b64encode(_edited(base64.b64decode(target["value"]))).decode()
    (desk / "edited.json").write_text(json.dumps(edited))
    failed = offline_check(desk, "edited.json", "--digest", "d1.json", "--public-key", public_key)
    assert failed.returncode == 1 and f"record {target['position']}: not in the log" in failed.stdout, failed.stdout

    # Over HTTP: the same digest key; a run's bundle for its organisation only.
    with http(server) as client:
        digest = client.get("/v1/ledger/digest").json()
        assert digest["key_id"] == bundle["key_id"] and digest["public_key"] == public_key
        over_http = client.get(f"/v1/ledger/runs/{run_id}/proof")
        assert over_http.status_code == 200 and len(over_http.json()["records"]) == len(bundle["records"])
        for hostile in (str(2**63), "-2", "x"):  # a cursor out of the log's range: a clear 422, never a 500
            assert client.get(f"/v1/ledger/runs/{run_id}/proof", params={"after": hostile}).status_code == 422
    assert http(server, create_key(server, "org_other")).get(f"/v1/ledger/runs/{run_id}/proof").status_code == 404
    admin = http(server, create_key(server, "ops", admin=True))  # another organisation's admin: not its run either
    assert admin.get(f"/v1/ledger/runs/{run_id}/proof").status_code == 404
    assert admin.get("/v1/ledger/digest").json()["key_id"] == bundle["key_id"]  # any key reads the digest
    assert httpx.get(f"{server.url}/v1/ledger/digest").status_code == 401  # no key, no digest

    # The log grows: a later digest is proven to extend the earlier one.
    _completed_run(server, sdk)
    assert audit(server, "digest", "--out", str(desk / "d2.json"), "--since", str(desk / "d1.json")).returncode == 0
    grown = offline_check(desk, "d2.json", "--digest", "d1.json", "--public-key", public_key)
    assert grown.returncode == 0 and "only grew from" in grown.stdout, grown.stdout + grown.stderr

    # One record of the run edited behind the ledger's back.
    tampered_env = _tamper(server, target)
    verify = subprocess.run([sys.executable, "-m", "services.cli", "verify", "--run", run_id, "--data-dir",
                             str(server.data_dir)], env={**server.env, **tampered_env}, capture_output=True,
                            text=True, timeout=300)
    assert verify.returncode == 1 and f"edited record at {target['position']}" in verify.stdout, verify.stdout
    after = audit(server, "export", run_id, "--out", str(desk / "b3.json"), env=tampered_env)
    assert after.returncode == 0, after.stderr
    stale = offline_check(desk, "b3.json", "--digest", "d1.json", "--public-key", public_key)
    assert stale.returncode == 1 and f"record {target['position']}" in stale.stdout, stale.stdout

    # The ledger's tree rebuilt from the edited log, and signed with the same key: caught.
    rebuilt_env = _rebuild_from_tampered_log(server, tampered_env)
    signed = audit(server, "digest", "--out", str(desk / "d3.json"), "--since", str(desk / "d1.json"), env=rebuilt_env)
    assert signed.returncode == 0, signed.stderr
    assert json.loads((desk / "d3.json").read_text())["key_id"] == bundle["key_id"]
    forked = offline_check(desk, "d3.json", "--digest", "d1.json", "--public-key", public_key)
    partition = target["position"].split(":")[0]
    assert forked.returncode == 1 and f"partition {partition}: the log signed at" in forked.stdout, forked.stdout
    assert "is not the one of the older digest" in forked.stdout


def _edited(value: bytes) -> bytes:
    assert b'"invoice"' in value
    return value.replace(b'"invoice"', b'"receipt"', 1)


def _tamper(server, target: dict) -> dict[str, str]:
    """Edit the record at `target`'s position; the settings that reach the edited log."""
    partition, offset = map(int, target["position"].split(":"))
    if server.backend == "embedded":
        with sqlite3.connect(server.data_dir / "log.db") as db:
            (value,) = db.execute('SELECT value FROM log WHERE partition = ? AND "offset" = ?', (partition, offset)).fetchone()
            db.execute('UPDATE log SET value = ? WHERE partition = ? AND "offset" = ?', (_edited(value), partition, offset))
        return {}
    copy = server.env["RUNLEDGER_TOPIC"] + "-copy"
    asyncio.run(_copy_topic(server.env["RUNLEDGER_KAFKA_BOOTSTRAP"], server.env["RUNLEDGER_TOPIC"], copy,
                            (partition, offset)))
    return {"RUNLEDGER_TOPIC": copy}


async def _copy_topic(bootstrap: str, topic: str, copy: str, edit: tuple[int, int]) -> None:
    """Every record of `topic` into a new topic `copy`, at the same partition, offset and time
    (CreateTime, the original append time given), the one at `edit` changed."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from events.kafka_log import KafkaEventLog

    source = KafkaEventLog(bootstrap, topic=topic)
    await source.start()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        await admin.create_topics([NewTopic(copy, source.partitions, 1, topic_configs={
            "retention.ms": "-1", "message.timestamp.type": "CreateTime"})])
        ends = await source.end_offsets()
        for partition in range(source.partitions):
            at = 0
            while at < ends[partition]:
                for record in await source.read(partition, at, 500):
                    assert record.offset == at  # no gaps: the copy's offsets are the original's
                    value = _edited(record.value) if (partition, record.offset) == edit else record.value
                    meta = await (await producer.send(copy, value=value, key=record.key.encode(), partition=partition,
                                                      timestamp_ms=record.timestamp_ms))
                    assert meta.offset == record.offset
                    at = record.offset + 1
    finally:
        await producer.stop()
        await admin.close()
        await source.close()


def _rebuild_from_tampered_log(server, tampered_env: dict[str, str]) -> dict[str, str]:
    """The embedded default: `runledger rebuild` replays the edited log.db into a new version.
    Kafka + PostgreSQL: a new read model projected from the copy, signing with the ledger's
    key (read from its control store, as an attacker holding it would)."""
    if server.backend == "embedded":
        done = cli(server, "rebuild", "--json")
        assert done.returncode == 0, done.stderr
        return {}
    database = asyncio.run(fresh_database_url("postgres", server.request, server.data_dir))
    key_file = server.data_dir / "stolen.key"
    key_file.write_text(asyncio.run(_signing_key(server.env["RUNLEDGER_DATABASE_URL"])))
    env = {**tampered_env, "RUNLEDGER_DATABASE_URL": database, "RUNLEDGER_NOTARY_KEY_FILE": str(key_file)}
    asyncio.run(_project_all({**server.env, **env}))
    return env


async def _signing_key(url: str) -> str:
    from sqlalchemy import select
    from sqlalchemy.ext.asyncio import create_async_engine

    from projections.store.control import notary_keys

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.scalar(select(notary_keys.c.private_key))
    finally:
        await engine.dispose()


async def _project_all(env: dict[str, str]) -> None:
    from projections.runtime.projector import Projector
    from projections.store.database import make_engine, prepare_schema
    from services.bootstrap import build_log
    from services.settings import Settings

    settings = Settings.from_env(env)
    log = build_log(settings)
    await log.start()
    engine = make_engine(settings.read_model_url)
    await prepare_schema(settings.read_model_url, engine)
    projector = Projector(log, engine)
    task = asyncio.create_task(projector.run(partitions=list(range(log.partitions))))
    try:
        ends = await log.end_offsets()
        for _ in range(600):
            if all(projector.partitions.get(p) and projector.partitions[p].next_offset >= end
                   for p, end in ends.items()):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the copy was not projected within 60 s")
    finally:
        projector.stop()
        await asyncio.wait_for(task, 30)
        await engine.dispose()
        await log.close()
