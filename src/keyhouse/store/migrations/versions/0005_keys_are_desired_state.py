"""keys are the desired state: revisions, tombstones, device references; no operation queue

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 08:20:00

A key's ``sync_state`` column becomes derived from ``revision`` / ``applied_revision`` /
``failed_revision`` / ``deleting``; the queue of operations (``device_operations``) goes: the
reconciler reads the keys themselves. Keys that were pending (an operation queued) get
``applied_revision`` 0 and are sent again, as they are now; tombstones stay tombstones. Pending
removals of keys the server never knew (from a sync) are dropped: the next sync finds them again.
Keypad-code uniqueness becomes a partial unique index over live keys only.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import keyhouse.store.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UNSYNCED = "deleting OR applied_revision < revision"


def upgrade() -> None:
    op.add_column(
        "smartlocks",
        sa.Column("link", sa.String(length=16), nullable=False, server_default="virtual"),
    )
    with op.batch_alter_table("smartlock_auths") as batch_op:
        batch_op.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(
            sa.Column("applied_revision", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("failed_revision", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("device_ref", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("retry_at", keyhouse.store.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
    op.execute("UPDATE smartlock_auths SET applied_revision = 1 WHERE sync_state = 'applied'")
    op.execute("UPDATE smartlock_auths SET failed_revision = 1 WHERE sync_state = 'failed'")
    # The simulator's reference for a key is its slot.
    op.execute(
        "UPDATE smartlock_auths SET device_ref = CAST(auth_id AS VARCHAR(64)) "
        "WHERE auth_id IS NOT NULL"
    )
    with op.batch_alter_table("smartlock_auths") as batch_op:
        batch_op.drop_constraint("uq_auth_keypad_code", type_="unique")
        batch_op.drop_column("sync_state")
    op.create_index(
        "uq_auth_keypad_code",
        "smartlock_auths",
        ["smartlock_id", "code"],
        unique=True,
        sqlite_where=sa.text("NOT deleting"),
        postgresql_where=sa.text("NOT deleting"),
    )
    op.create_index(
        "ix_auth_unsynced",
        "smartlock_auths",
        ["smartlock_id"],
        sqlite_where=sa.text(UNSYNCED),
        postgresql_where=sa.text(UNSYNCED),
    )
    op.drop_table("device_operations")


def _date(value: datetime | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (
        value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    )


def downgrade() -> None:
    op.create_table(
        "device_operations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("operation_id", sa.String(length=24), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("smartlock_id", sa.BigInteger(), nullable=False),
        sa.Column("auth_key", sa.String(length=24), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", keyhouse.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("done_at", keyhouse.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("operation_id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("device_operations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_devop_lock_status", ["smartlock_id", "status", "id"], unique=False
        )
    # Unsynced keys get the operation the old worker needs to bring them to their lock.
    connection = op.get_bind()
    unsynced = connection.execute(
        sa.text(
            "SELECT id, account_id, smartlock_id, deleting, auth_id, type, name, enabled, "
            "remote_allowed, code, allowed_from_date, allowed_until_date, allowed_week_days, "
            "allowed_from_time, allowed_until_time, operation_id FROM smartlock_auths "
            f"WHERE ({UNSYNCED}) AND (failed_revision IS NULL OR failed_revision < revision) "
            "ORDER BY smartlock_id, id"
        )
    ).mappings()
    operations = sa.table(
        "device_operations",
        sa.column("operation_id", sa.String),
        sa.column("account_id", sa.Integer),
        sa.column("smartlock_id", sa.BigInteger),
        sa.column("auth_key", sa.String),
        sa.column("kind", sa.String),
        sa.column("payload", sa.JSON),
        sa.column("status", sa.String),
        sa.column("attempts", sa.Integer),
        sa.column("created_at", keyhouse.store.types.UTCDateTime(timezone=True)),
    )
    rows = []
    now = datetime.now(UTC)
    for index, key in enumerate(unsynced):
        if key["deleting"]:
            kind, payload = "remove_auth", {"authId": key["auth_id"]}
        else:
            kind = "put_auth"
            payload = {
                "type": key["type"],
                "name": key["name"],
                "enabled": bool(key["enabled"]),
                "remoteAllowed": bool(key["remote_allowed"]),
                "code": key["code"],
                "allowedFromDate": _date(key["allowed_from_date"]),
                "allowedUntilDate": _date(key["allowed_until_date"]),
                "allowedWeekDays": key["allowed_week_days"],
                "allowedFromTime": key["allowed_from_time"],
                "allowedUntilTime": key["allowed_until_time"],
            }
        rows.append(
            {
                "operation_id": key["operation_id"] or f"{index:024x}",
                "account_id": key["account_id"],
                "smartlock_id": key["smartlock_id"],
                "auth_key": key["id"],
                "kind": kind,
                "payload": payload,
                "status": "pending",
                "attempts": 0,
                "created_at": now,
            }
        )
    if rows:
        op.bulk_insert(operations, rows)
    op.drop_index("ix_auth_unsynced", table_name="smartlock_auths")
    op.drop_index("uq_auth_keypad_code", table_name="smartlock_auths")
    with op.batch_alter_table("smartlock_auths") as batch_op:
        batch_op.add_column(
            sa.Column("sync_state", sa.String(length=16), nullable=False, server_default="pending")
        )
    op.execute(
        "UPDATE smartlock_auths SET sync_state = CASE "
        "WHEN failed_revision IS NOT NULL AND failed_revision >= revision THEN 'failed' "
        "WHEN applied_revision >= revision THEN 'applied' ELSE 'pending' END"
    )
    with op.batch_alter_table("smartlock_auths") as batch_op:
        batch_op.alter_column("sync_state", server_default=None)
        batch_op.create_unique_constraint("uq_auth_keypad_code", ["smartlock_id", "code"])
        batch_op.drop_column("attempts")
        batch_op.drop_column("retry_at")
        batch_op.drop_column("device_ref")
        batch_op.drop_column("failed_revision")
        batch_op.drop_column("applied_revision")
        batch_op.drop_column("revision")
    # Not through a batch copy of the table: dropping the old smartlocks table would delete
    # every key (ON DELETE CASCADE) on SQLite. Both stores drop a column in place.
    op.execute("ALTER TABLE smartlocks DROP COLUMN link")
