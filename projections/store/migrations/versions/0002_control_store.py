"""Control store: API key management (ids, roles, revocation, last use) and idempotency records.

The tables are `projections.store.control.metadata` (not the projected read model): keys and
idempotency records are never rebuilt from the log. Keys from revision 0001 get a key
id derived from their hash (`key_` + its first 16 hex digits) and the tenant role.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("key_id", sa.String(64), nullable=True))
    op.add_column("api_keys", sa.Column("role", sa.String(16), nullable=False, server_default="tenant"))
    op.add_column("api_keys", sa.Column("last_used_at", TS))
    op.add_column("api_keys", sa.Column("revoked_at", TS))
    op.execute("UPDATE api_keys SET key_id = 'key_' || substr(key_hash, 1, 16) WHERE key_id IS NULL")
    op.alter_column("api_keys", "key_id", nullable=False)
    op.create_unique_constraint("api_keys_key_id_key", "api_keys", ["key_id"])
    op.create_index("ix_api_keys_org", "api_keys", ["org_id"])

    op.create_table(
        "idempotency_keys",
        sa.Column("org_id", sa.Text, primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer),
        sa.Column("body", sa.LargeBinary),
        sa.Column("headers", sa.Text),
        sa.Column("created_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_index("ix_api_keys_org", "api_keys")
    op.drop_constraint("api_keys_key_id_key", "api_keys", type_="unique")
    for column in ("revoked_at", "last_used_at", "role", "key_id"):
        op.drop_column("api_keys", column)
