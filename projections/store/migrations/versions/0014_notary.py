"""The notary: each partition's Merkle tree (notary_tiles, notary_segments;
projections/notary) and, in the control store, the signing key (notary_keys).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30

No backfill: a read model made before this revision has no tree for the records it holds,
so its partitions are reported "not notarised" until `runledger rebuild` replays the log
into a new version, whose trees start at offset 0 (docs/operations.md, "Tamper evidence").
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notary_tiles",
        sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("level", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("hashes", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "notary_segments",
        sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("first_offset", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("first_leaf", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "notary_keys",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("private_key", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("notary_keys")
    op.drop_table("notary_segments")
    op.drop_table("notary_tiles")
