"""leases on locks (one reconciler per lock across processes), the simulator's fence, and
when a key and a lock were last verified

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 09:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import keyhouse.store.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_leases",
        sa.Column("smartlock_id", sa.BigInteger(), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["smartlock_id"], ["smartlocks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("smartlock_id"),
    )
    op.add_column("sim_locks", sa.Column("fence", sa.Integer(), nullable=False, server_default="0"))
    op.add_column(
        "sim_auths", sa.Column("writes", sa.Integer(), nullable=False, server_default="1")
    )
    op.add_column(
        "smartlock_auths",
        sa.Column("verified_at", keyhouse.store.types.UTCDateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "smartlocks",
        sa.Column("checked_at", keyhouse.store.types.UTCDateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    # In place on both stores (a batch copy of sim_locks would be harmless, but needless).
    op.execute("ALTER TABLE smartlocks DROP COLUMN checked_at")
    op.execute("ALTER TABLE smartlock_auths DROP COLUMN verified_at")
    op.execute("ALTER TABLE sim_auths DROP COLUMN writes")
    op.execute("ALTER TABLE sim_locks DROP COLUMN fence")
    op.drop_table("device_leases")
