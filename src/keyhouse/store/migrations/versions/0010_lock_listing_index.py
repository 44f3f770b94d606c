"""the account's locks in the listing's order

``GET /smartlock`` pages an account's locks by id: with only an index on ``account_id`` the
planner walked every account's locks by the primary key. ``ix_lock_account_id`` replaces it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 12:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_lock_account_id", "smartlocks", ["account_id", "id"])
    op.drop_index("ix_smartlocks_account_id", table_name="smartlocks")


def downgrade() -> None:
    op.create_index("ix_smartlocks_account_id", "smartlocks", ["account_id"])
    op.drop_index("ix_lock_account_id", table_name="smartlocks")
