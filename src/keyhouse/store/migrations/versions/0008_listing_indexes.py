"""indexes in the order lists are paged: keys by lock, creation and id; invites by id

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 10:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The listing's whole order after the account: a page (and the seek to its cursor) is a
    # range of the index, not a sort of all the account's keys. It replaces its own prefix.
    op.create_index(
        "ix_auth_listing", "smartlock_auths", ["account_id", "smartlock_id", "created_at", "id"]
    )
    op.drop_index("ix_auth_account_lock", table_name="smartlock_auths")
    op.create_index("ix_invite_account_id", "invites", ["account_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_invite_account_id", table_name="invites")
    op.create_index("ix_auth_account_lock", "smartlock_auths", ["account_id", "smartlock_id"])
    op.drop_index("ix_auth_listing", table_name="smartlock_auths")
