"""Leases on locks: one reconciler at a time per lock, across every process on the database.

Times are the database's own clock, in seconds (PostgreSQL ``clock_timestamp()``; SQLite's
``julianday('now')``, the one clock of the machine that holds the file), so processes whose
clocks disagree still agree on who holds a lease. A grant bumps the lease's ``epoch``; renewing
and recording check it, so a process that lost its lease (paused, cut off) records nothing.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from keyhouse.store.models import DeviceLease


def db_now(session: Session) -> ColumnElement[float]:
    """Now, in seconds since 1970, on the database's clock."""
    if session.get_bind().dialect.name == "sqlite":
        return literal_column("((julianday('now') - 2440587.5) * 86400.0)")
    return literal_column("extract(epoch from clock_timestamp())::float8")


def acquire(session: Session, smartlock_id: int, owner: str, seconds: float) -> int | None:
    """The lease for ``owner`` with a new epoch, if it is free or expired; else None."""
    now = db_now(session)
    grant = (
        update(DeviceLease)
        .where(
            DeviceLease.smartlock_id == smartlock_id,
            (DeviceLease.expires_at < now) | (DeviceLease.owner == owner),
        )
        .values(owner=owner, epoch=DeviceLease.epoch + 1, expires_at=now + seconds)
        .returning(DeviceLease.epoch)
    )
    epoch = session.scalar(grant)
    if epoch is not None:
        return epoch
    # None: held by another, or the lock's first lease (no row yet): make the row, try again.
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    made = session.execute(
        insert(DeviceLease)
        .values(smartlock_id=smartlock_id, owner="", epoch=0, expires_at=0.0)
        .on_conflict_do_nothing(index_elements=["smartlock_id"])
    )
    return session.scalar(grant) if made.rowcount else None


def take_over(
    session: Session, smartlock_id: int, dead: str, epoch: int, owner: str, seconds: float
) -> int | None:
    """The lease of a holder known to be dead (``dead`` at ``epoch``), for ``owner`` with a new
    epoch; None if it changed hands meanwhile."""
    now = db_now(session)
    return session.scalar(
        update(DeviceLease)
        .where(
            DeviceLease.smartlock_id == smartlock_id,
            DeviceLease.owner == dead,
            DeviceLease.epoch == epoch,
        )
        .values(owner=owner, epoch=DeviceLease.epoch + 1, expires_at=now + seconds)
        .returning(DeviceLease.epoch)
    )


def renew(session: Session, smartlock_id: int, owner: str, epoch: int, seconds: float) -> bool:
    """Extend a lease still held (same owner and epoch, not expired); False if it was lost."""
    now = db_now(session)
    held = session.execute(
        update(DeviceLease)
        .where(
            DeviceLease.smartlock_id == smartlock_id,
            DeviceLease.owner == owner,
            DeviceLease.epoch == epoch,
            DeviceLease.expires_at >= now,
        )
        .values(expires_at=now + seconds)
        .execution_options(synchronize_session=False)
    )
    return held.rowcount == 1


def release(session: Session, smartlock_id: int, owner: str, epoch: int) -> None:
    session.execute(
        update(DeviceLease)
        .where(
            DeviceLease.smartlock_id == smartlock_id,
            DeviceLease.owner == owner,
            DeviceLease.epoch == epoch,
        )
        .values(expires_at=0.0)
        .execution_options(synchronize_session=False)
    )


def let_go(session: Session, smartlock_id: int, owner: str, epoch: int) -> bool:
    """Release a lease still held (same owner and epoch, not expired), in a transaction that
    also records under it; False if it was lost (then nothing may be recorded)."""
    held = session.execute(
        update(DeviceLease)
        .where(
            DeviceLease.smartlock_id == smartlock_id,
            DeviceLease.owner == owner,
            DeviceLease.epoch == epoch,
            DeviceLease.expires_at >= db_now(session),
        )
        .values(expires_at=0.0)
        .execution_options(synchronize_session=False)
    )
    return held.rowcount == 1


def holder(session: Session, smartlock_id: int) -> tuple[str, int, bool] | None:
    """(owner, epoch, still valid) of the lock's lease, for tests and the admin view."""
    row = session.execute(
        select(
            DeviceLease.owner, DeviceLease.epoch, DeviceLease.expires_at >= db_now(session)
        ).where(DeviceLease.smartlock_id == smartlock_id)
    ).first()
    return None if row is None else (row[0], row[1], bool(row[2]))
