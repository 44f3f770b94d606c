"""the stand-in's Nuki mode can fail the next requests with a chosen status (402, 5xx…)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 19:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nuki_emulation") as batch:
        batch.add_column(sa.Column("fail_next", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("fail_status", sa.Integer(), nullable=False, server_default="503")
        )


def downgrade() -> None:
    with op.batch_alter_table("nuki_emulation") as batch:
        batch.drop_column("fail_status")
        batch.drop_column("fail_next")
