"""runs.filenames: a run's documents' filenames, written once with the row.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06

The metrics summary lists every document of a run with its filename, and `runs.summary`
carried them: a few dozen bytes a document, rendered and written again by every batch
that touched the run (52 KB a write for a run of 2,000 documents named like
`doc_1234.json`, where the rest of the summary is ~440 bytes). A run's filenames are fixed by its spec, so they go in a
column of their own, written once when the row is first written, like `runs.spec`.

No backfill: a row written before this revision keeps its filenames in its summary until
the projector writes the row again; from then on its reader takes them from `runs.spec`
(projections/store/views.py `get_run_summary`). `runledger rebuild` fills every row.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("filenames", sa.Text(), nullable=True))


def downgrade() -> None:
    # Summaries written since hold no filenames, which the code before this revision reads
    # there: it renders a NULL summary from the run's state (and spec), filenames included.
    op.execute("UPDATE runs SET summary = NULL")
    op.drop_column("runs", "filenames")
