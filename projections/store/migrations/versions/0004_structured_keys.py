"""Unambiguous composite keys (blocks, results): nothing to migrate.

`events/keys.py` keeps every key ever written from ordinary ids in its old joined form
(`block:{org}:{workflow}:{block}`, result ids hashed from `{run}/{document}`) and gives
the structured form only to ids that made the joined one ambiguous; those had collided
already, and the codec re-keys their `BlockDefined` events by payload on replay. So no
stored key changes and this revision alters no table.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""
from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
