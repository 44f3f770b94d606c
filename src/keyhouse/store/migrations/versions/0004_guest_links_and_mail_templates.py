"""guest links replace invite codes; mail rendered from templates at send time

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 01:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import keyhouse.store.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


# SQLite renames a column by copying the table: keep AUTOINCREMENT (ids never reused).
KEEP = {"sqlite_autoincrement": True}


def upgrade() -> None:
    # Invite codes were never redeemable; their invites end here (resend gives a guest link).
    op.execute("UPDATE invites SET expires_at = created_at")
    with op.batch_alter_table("invites", table_kwargs=KEEP) as batch_op:
        batch_op.alter_column("code_hash", new_column_name="link_hash")
        batch_op.add_column(
            sa.Column("redeemed_at", keyhouse.store.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("device_hash", sa.String(length=64), nullable=True))
    op.create_index("ix_invites_link_hash", "invites", ["link_hash"], unique=True)
    with op.batch_alter_table("outbox", table_kwargs=KEEP) as batch_op:
        batch_op.add_column(
            sa.Column("language", sa.String(length=8), nullable=False, server_default="en")
        )
        batch_op.add_column(sa.Column("context", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("secrets", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "handed_over_at", keyhouse.store.types.UTCDateTime(timezone=True), nullable=True
            )
        )
    op.execute("UPDATE outbox SET kind = 'invite' WHERE kind = 'invite_mail'")


def downgrade() -> None:
    op.execute("UPDATE outbox SET kind = 'invite_mail' WHERE kind = 'invite'")
    with op.batch_alter_table("outbox", table_kwargs=KEEP) as batch_op:
        batch_op.drop_column("handed_over_at")
        batch_op.drop_column("secrets")
        batch_op.drop_column("context")
        batch_op.drop_column("language")
    op.drop_index("ix_invites_link_hash", table_name="invites")
    with op.batch_alter_table("invites", table_kwargs=KEEP) as batch_op:
        batch_op.drop_column("device_hash")
        batch_op.drop_column("redeemed_at")
        batch_op.alter_column("link_hash", new_column_name="code_hash")
