"""linked Nuki Web accounts: when the next pull of state and log is due (one process at a time)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("upstream_links") as batch:
        batch.add_column(sa.Column("sync_due_at", sa.Float(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("upstream_links") as batch:
        batch.drop_column("sync_due_at")
