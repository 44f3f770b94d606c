"""indexes for one user's keys and for keys of some types, in the listing's order

One user's keys across the locks (``GET /smartlock/auth?accountUserId=``) were read through
the account's listing index: every key of the account, then filtered. ``ix_auth_user`` finds them
directly and in order, and replaces the one-column index on ``account_user_id`` (its first
column serves the user's removal as that one did). ``ix_auth_account_type`` does the same for
``?types=``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 10:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

KEY_ORDER = ["smartlock_id", "created_at", "id"]


def upgrade() -> None:
    op.create_index(
        "ix_auth_user", "smartlock_auths", ["account_user_id", "account_id", *KEY_ORDER]
    )
    op.create_index("ix_auth_account_type", "smartlock_auths", ["account_id", "type", *KEY_ORDER])
    op.drop_index("ix_smartlock_auths_account_user_id", table_name="smartlock_auths")


def downgrade() -> None:
    op.create_index("ix_smartlock_auths_account_user_id", "smartlock_auths", ["account_user_id"])
    op.drop_index("ix_auth_account_type", table_name="smartlock_auths")
    op.drop_index("ix_auth_user", table_name="smartlock_auths")
