"""The control store: state that is NOT projected from the log and is never rebuilt.

API keys, idempotency records and console sessions are facts about access, not about
runs: a replay must neither lose nor copy them. They live apart from the read model:

- embedded default: their own SQLite file, `<data-dir>/control.db`
  (`Settings.control_url`), created here by `create_control_schema`;
- PostgreSQL: the read model's database, default schema, created by Alembic
  (revision 0002 for keys and idempotency records, 0009 for their key-scoped form and the
  console's sessions), so `runledger migrate` covers both.

To add a table: declare it on `metadata` below (nothing else registers it), and on
PostgreSQL add it in your own Alembic revision; `tests/integration/test_migrations.py`
compares the migrated schema with `tables.metadata` + this `metadata`.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, MetaData, String, Table, Text, func, inspect, select, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.store.database import create_tables
from projections.store.tables import UtcDateTime

metadata = MetaData()
TS = UtcDateTime()

ROLES = ("tenant", "admin")

api_keys = Table(
    "api_keys", metadata,
    Column("key_hash", String(64), primary_key=True),  # sha256 of the secret; the secret is never stored
    Column("key_id", String(64), nullable=False, unique=True),  # public handle: `key_<hex>`
    Column("org_id", Text, nullable=False),
    Column("name", Text),
    Column("role", String(16), nullable=False, server_default="tenant"),
    Column("created_at", TS, nullable=False),
    Column("last_used_at", TS),
    Column("revoked_at", TS),
    Index("ix_api_keys_org", "org_id"),
)

idempotency_keys = Table(
    "idempotency_keys", metadata,
    Column("org_id", Text, primary_key=True),
    Column("key_id", String(64), primary_key=True),  # the API key that sent it: its answer is replayed to it alone
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),  # method, path, query and body of the first request
    Column("seed", String(32), nullable=False),  # the command's ids derive from it (services/api/earned.py)
    Column("status", Integer),  # NULL until an answer is stored
    Column("body", LargeBinary),
    Column("headers", Text),  # JSON object of the response headers worth replaying
    Column("created_at", TS, nullable=False),
    Column("lease_until", TS, nullable=False),  # an attempt holds the key until then; a retry takes it over after
)

# Console sign-ins (services/console/session.py): the cookie carries a random session id,
# stored here only as its SHA-256; a session ends with its key (revoked or rotated).
console_sessions = Table(
    "console_sessions", metadata,
    Column("session_hash", String(64), primary_key=True),
    Column("key_id", String(64), nullable=False),
    Column("org_id", Text, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),  # the absolute end, whatever the activity
    Column("last_seen_at", TS, nullable=False),  # the idle end is this plus the idle timeout
    Index("ix_console_sessions_key", "key_id"),
)

# Read-model versions and the active-version pointer (projections/runtime/versions.py; Alembic 0005).
read_model_versions = Table(
    "read_model_versions", metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("status", String(16), nullable=False),  # building | active | retired | dropped
    Column("location", Text, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("activated_at", TS),
)

# The notary's signing key where no key file is used: PostgreSQL deployments (projections/notary/keys.py;
# Alembic 0014). Not projected: a rebuild must sign with the same key.
notary_keys = Table(
    "notary_keys", metadata,
    Column("name", String(32), primary_key=True),
    Column("private_key", Text, nullable=False),  # PEM, PKCS#8
    Column("created_at", TS, nullable=False),
)


# Verification jobs (services/verifications.py; Alembic 0011): a run refolded and compared
# with its rows in a worker process. `active_org` is the organisation while the job is
# queued or running, NULL after: unique, so an organisation has one at a time.
verifications = Table(
    "verifications", metadata,
    Column("verification_id", String(40), primary_key=True),
    Column("org_id", Text, nullable=False),
    Column("run_id", Text, nullable=False),
    Column("status", String(16), nullable=False),  # queued | running | completed | failed
    Column("active_org", Text, unique=True),
    Column("events_total", BigInteger),
    Column("events_done", BigInteger, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("started_at", TS),
    Column("finished_at", TS),
    Column("heartbeat_at", TS, nullable=False),  # kept fresh by the process that runs it
    Column("result", Text),  # RunCheck.as_json() (projections/runtime/verify.py), at most ~300 KB
    Column("error", Text),
    Index("ix_verifications_org", "org_id", "created_at"),
)


def legacy_key_id(key_hash: str) -> str:
    """Keys created before key ids existed get one derived from their hash."""
    return "key_" + key_hash[:16]


async def create_control_schema(engine: AsyncEngine) -> None:
    """Embedded (SQLite) control store; PostgreSQL's comes from migrations."""
    await create_tables(engine, metadata, _key_scoped_idempotency)


def _key_scoped_idempotency(sync_conn) -> None:
    """A control.db from before idempotency records were kept per key (revision 0009's
    change): its records, 24 h of scratch, are dropped and the table made anew. Keys are
    never touched."""
    columns = {c["name"] for c in inspect(sync_conn).get_columns("idempotency_keys")}
    if "key_id" not in columns:
        idempotency_keys.drop(sync_conn)
        idempotency_keys.create(sync_conn)


async def adopt_legacy_keys(read_model: AsyncEngine, control: AsyncEngine) -> int:
    """Installs from before the control store kept `api_keys` in `readmodel.db`: copy
    them into the control store (keys already there are kept as they are), then drop the
    old table, so this happens once. Safe to repeat after a crash in between.
    Returns how many keys were copied."""
    async with read_model.connect() as conn:
        if not await conn.run_sync(lambda c: inspect(c).has_table("api_keys")):
            return 0
        rows = (await conn.execute(text("SELECT key_hash, org_id, name, created_at FROM api_keys"))).all()
    copied = 0
    async with control.begin() as conn:
        for row in rows:
            values = dict(key_hash=row.key_hash, key_id=legacy_key_id(row.key_hash), org_id=row.org_id,
                          name=row.name, role="tenant", created_at=_parse_time(row.created_at))
            result = await conn.execute(sqlite_insert(api_keys).values(**values).on_conflict_do_nothing())
            copied += result.rowcount
    async with read_model.begin() as conn:
        await conn.execute(text("DROP TABLE api_keys"))
    return copied


def _parse_time(value) -> datetime:
    if isinstance(value, datetime):
        return value
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return datetime.now(timezone.utc)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


async def count_keys(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return await conn.scalar(select(func.count()).select_from(api_keys))
