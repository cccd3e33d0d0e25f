"""API keys in the control store, on SQLite and PostgreSQL: create, list, revoke, rotate,
roles, organisation names, last use; keys of an older install adopted; the CLI."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import datetime, timezone

import httpx
import pytest
from fastapi import Depends, FastAPI, Request

from projections.store import control, migrate
from projections.store.database import make_engine
from services import keys
from services.api import errors
from services.api.auth import Caller, KeyCache, is_admin, require_admin
from services.bootstrap import start_runtime
from services.settings import Settings


@pytest.fixture
async def store(database_url):
    engine = make_engine(database_url)
    if database_url.startswith("sqlite"):
        await control.create_control_schema(engine)
    else:
        await migrate.upgrade(database_url)
    yield engine
    await engine.dispose()


async def test_a_key_is_created_listed_revoked_and_rotated(store):
    secret, created = await keys.create_key(store, "acme", "ci")
    assert secret.startswith("rl_") and created.key_id.startswith("key_") and created.role == "tenant"
    assert (await keys.lookup(store, secret)).org_id == "acme"
    assert [k.key_id for k in await keys.list_keys(store, "acme")] == [created.key_id]
    assert all(secret not in json.dumps(k.public()) and "key_hash" not in k.public()
               for k in await keys.list_keys(store))

    new_secret, new, old = await keys.rotate_key(store, created.key_id)
    assert new.org_id == "acme" and new.name == "ci" and new.role == "tenant" and new_secret != secret
    assert old.revoked_at is not None and (await keys.lookup(store, new_secret)).revoked_at is None

    revoked = await keys.revoke_key(store, new_secret)  # by the secret itself, too
    assert revoked.key_id == new.key_id and revoked.revoked_at is not None
    again = await keys.revoke_key(store, new.key_id)
    assert again.revoked_at == revoked.revoked_at  # idempotent: the first revocation time stays
    with pytest.raises(ValueError, match="revoked"):
        await keys.rotate_key(store, new.key_id)
    with pytest.raises(keys.KeyNotFound):
        await keys.revoke_key(store, "key_0000000000000000")


@pytest.mark.parametrize("org", ["", "   ", " acme", "t:u", "a/b", "x" * 65, "café", "-lead", "tab\there"])
async def test_ill_formed_organisation_names_are_refused(store, org):
    with pytest.raises(ValueError, match="invalid organisation name"):
        await keys.create_key(store, org)
    assert await keys.list_keys(store) == []


async def test_the_bootstrap_key_is_stored_once_however_often_replicas_start(store):
    for _ in range(3):
        assert await keys.ensure_bootstrap_key(store, "rl_boot") is None
    [record] = await keys.list_keys(store)
    assert record.org_id == keys.DEFAULT_ORG and record.name == "bootstrap"


async def test_the_cache_refuses_a_revoked_key_once_its_entry_expires_and_records_last_use(store):
    secret, record = await keys.create_key(store, "acme")
    cache = KeyCache(store, ttl=0.0)  # every lookup asks the store
    assert (await cache.get(secret)).revoked_at is None
    used = (await keys.find_key(store, record.key_id)).last_used_at
    assert used is not None and (datetime.now(timezone.utc) - used).total_seconds() < 60
    await cache.get(secret)
    assert (await keys.find_key(store, record.key_id)).last_used_at == used  # throttled: one write a minute
    await keys.revoke_key(store, record.key_id)
    assert (await cache.get(secret)).revoked_at is not None
    assert await cache.get("rl_unknown") is None


async def test_require_admin_and_is_admin(store):
    tenant, _ = await keys.create_key(store, "acme")
    admin, _ = await keys.create_key(store, "ops", role="admin")
    app = FastAPI()
    app.state.keys = KeyCache(store)
    errors.install(app)

    @app.get("/ops")
    async def ops(caller: Caller = Depends(require_admin)):
        return {"org": caller.org_id}

    @app.get("/peek")
    async def peek(request: Request):
        return {"admin": await is_admin(request)}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get("/ops", headers={"Api-Key": admin})).json() == {"org": "ops"}
        forbidden = await client.get("/ops", headers={"Api-Key": tenant})
        assert forbidden.status_code == 403 and forbidden.json()["detail"]["code"] == "admin_required"
        assert (await client.get("/ops")).status_code == 401
        assert (await client.get("/ops", headers={"Authorization": "Bearer nope"})).status_code == 401
        assert (await client.get("/peek", headers={"Api-Key": admin})).json() == {"admin": True}
        for headers in ({"Api-Key": tenant}, {"Api-Key": "nope"}, {}):
            assert (await client.get("/peek", headers=headers)).json() == {"admin": False}


async def test_keys_of_an_older_install_are_adopted_once(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    old = sqlite3.connect(data / "readmodel.db")  # the read model as versions before the control store wrote it
    old.execute("CREATE TABLE api_keys (key_hash VARCHAR(64) PRIMARY KEY, org_id TEXT NOT NULL, name TEXT, "
                "created_at DATETIME NOT NULL)")
    old.execute("INSERT INTO api_keys VALUES (?, 'acme', 'legacy', '2026-01-02 03:04:05.000000')",
                (keys.hash_key("rl_old_secret"),))
    old.commit()
    old.close()

    for _ in range(2):  # a second start finds nothing more to copy
        runtime = await start_runtime(Settings(data_dir=data), with_projector=False)
        try:
            [record] = await keys.list_keys(runtime.control)
            assert (record.org_id, record.name, record.role) == ("acme", "legacy", "tenant")
            assert record.key_id == control.legacy_key_id(keys.hash_key("rl_old_secret"))
            assert record.created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
            assert (await keys.lookup(runtime.control, "rl_old_secret")).org_id == "acme"
        finally:
            await runtime.close()
    tables = sqlite3.connect(data / "readmodel.db").execute("SELECT name FROM sqlite_master").fetchall()
    assert ("api_keys",) not in tables  # keys no longer sit in the rebuildable read model


async def test_a_control_store_from_before_key_scoped_idempotency_keeps_its_keys(tmp_path):
    """Revision 0009's change on the embedded control.db: the old idempotency table (24 h of
    scratch) is made anew, once; keys are kept."""
    data = tmp_path / "data"
    runtime = await start_runtime(Settings(data_dir=data), with_projector=False)
    secret, _ = await keys.create_key(runtime.control, "acme")
    await runtime.close()
    old = sqlite3.connect(data / "control.db")  # idempotency records as they were kept before
    old.execute("DROP TABLE idempotency_keys")
    old.execute("CREATE TABLE idempotency_keys (org_id TEXT NOT NULL, key VARCHAR(255) NOT NULL, "
                "request_hash VARCHAR(64) NOT NULL, status INTEGER, body BLOB, headers TEXT, "
                "created_at DATETIME NOT NULL, PRIMARY KEY (org_id, key))")
    old.execute("INSERT INTO idempotency_keys VALUES ('acme', 'k', 'h', 201, x'', '{}', '2026-01-02 03:04:05')")
    old.commit()
    old.close()

    for _ in range(2):
        runtime = await start_runtime(Settings(data_dir=data), with_projector=False)
        try:
            assert (await keys.lookup(runtime.control, secret)).org_id == "acme"
        finally:
            await runtime.close()
    columns = [row[1] for row in sqlite3.connect(data / "control.db").execute("PRAGMA table_info(idempotency_keys)")]
    assert columns == [c.name for c in control.idempotency_keys.columns]


def keys_cli(data_dir, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.cli", "keys", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=120, env=env)


def test_the_keys_cli(tmp_path):
    created = keys_cli(tmp_path, "create", "--org", "acme", "--name", "ci", "--json")
    assert created.returncode == 0, created.stderr
    first = json.loads(created.stdout)
    admin = keys_cli(tmp_path, "create", "--org", "ops", "--admin")
    secret = admin.stdout.strip().splitlines()[-1]
    assert admin.returncode == 0 and secret.startswith("rl_")

    listed = json.loads(keys_cli(tmp_path, "list", "--json").stdout)
    assert {(k["org_id"], k["role"]) for k in listed} == {("acme", "tenant"), ("ops", "admin")}
    assert all("key" not in k and "key_hash" not in k for k in listed)
    table = keys_cli(tmp_path, "list").stdout
    assert first["key_id"] in table and first["key"] not in table and secret not in table

    rotated = json.loads(keys_cli(tmp_path, "rotate", first["key_id"], "--json").stdout)
    assert rotated["replaces"] == first["key_id"] and rotated["org_id"] == "acme"
    revoked = json.loads(keys_cli(tmp_path, "revoke", secret, "--json").stdout)
    assert revoked["org_id"] == "ops" and revoked["revoked_at"]
    states = {k["key_id"]: k["revoked_at"] for k in json.loads(keys_cli(tmp_path, "list", "--json").stdout)}
    assert states[first["key_id"]] and states[revoked["key_id"]] and not states[rotated["key_id"]]

    for bad in ("", "  ", "t:u"):
        refused = keys_cli(tmp_path, "create", "--org", bad)
        assert refused.returncode == 2 and "invalid organisation name" in refused.stderr
    missing = keys_cli(tmp_path, "revoke", "key_nope")
    assert missing.returncode == 2 and "no API key" in missing.stderr
