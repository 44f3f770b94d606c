"""keys driven through Nuki's cloud: where a key came from, a create under way, and the
revision the upstream accepted (apart from the one the lock holds)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 18:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("smartlock_auths") as batch:
        batch.add_column(
            sa.Column("origin", sa.String(length=16), nullable=False, server_default="keyhouse")
        )
        batch.add_column(sa.Column("create_marker", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("accepted_revision", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("smartlock_auths") as batch:
        batch.drop_column("accepted_revision")
        batch.drop_column("create_marker")
        batch.drop_column("origin")
