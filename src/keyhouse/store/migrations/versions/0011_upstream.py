"""linked Nuki Web accounts (upstream links and their imported locks), and the stand-in's
Nuki-mode switches

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import keyhouse.store.types

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

DATE = keyhouse.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "upstream_links",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("token_secret", sa.Text(), nullable=False),
        sa.Column("created_at", DATE, nullable=False),
        sa.Column("updated_at", DATE, nullable=False),
        sa.Column("last_contact_at", DATE, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("calls", sa.Integer(), nullable=False, server_default="0"),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id"),
    )
    op.create_table(
        "upstream_locks",
        sa.Column("smartlock_id", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=True),
        sa.Column("state", sa.JSON(), nullable=True),
        sa.Column("server_state", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("seen_at", DATE, nullable=False),
        sa.Column("removed_at", DATE, nullable=True),
        sa.ForeignKeyConstraint(["smartlock_id"], ["smartlocks.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("smartlock_id"),
    )
    op.create_index("ix_upstream_locks_account_id", "upstream_locks", ["account_id"])
    op.create_table(
        "nuki_emulation",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("too_many_requests", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("keys_appear_seconds", sa.Float(), nullable=True),
        sa.Column("hide_keys_since", DATE, nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id"),
    )


def downgrade() -> None:
    op.drop_table("nuki_emulation")
    op.drop_index("ix_upstream_locks_account_id", table_name="upstream_locks")
    op.drop_table("upstream_locks")
    op.drop_table("upstream_links")
