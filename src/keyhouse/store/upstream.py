"""Queries for linked Nuki Web accounts: links, imported locks, the pull of their state and
log, the stand-in's switches."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Text, case, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from keyhouse.rules.upstream import UpstreamLockInfo
from keyhouse.store.leases import db_now
from keyhouse.store.models import (
    Account,
    NukiEmulation,
    Smartlock,
    SmartlockAuth,
    SmartlockLog,
    UpstreamLink,
    UpstreamLock,
)


def hold_account(session: Session, account_id: int) -> Account | None:
    """The account, its row locked (PostgreSQL) so links of one account run one at a time."""
    return session.scalar(select(Account).where(Account.id == account_id).with_for_update())


def holders(session: Session, ids: Iterable[int]) -> dict[int, tuple[int, str]]:
    """Each of ``ids`` Keyhouse has: (account, link kind)."""
    wanted = list(ids)
    if not wanted:
        return {}
    rows = session.execute(
        select(Smartlock.id, Smartlock.account_id, Smartlock.link).where(Smartlock.id.in_(wanted))
    )
    return {row.id: (row.account_id, row.link) for row in rows}


def imported(session: Session, account_id: int) -> Sequence[UpstreamLock]:
    return session.scalars(select(UpstreamLock).where(UpstreamLock.account_id == account_id)).all()


def link_of(session: Session, account_id: int) -> UpstreamLink | None:
    return session.get(UpstreamLink, account_id)


def links(session: Session) -> Sequence[UpstreamLink]:
    return session.scalars(select(UpstreamLink).order_by(UpstreamLink.account_id)).all()


def lock_counts(session: Session) -> dict[int, tuple[int, int]]:
    """Per account: (imported locks, of which the upstream no longer lists)."""
    rows = session.execute(
        select(
            UpstreamLock.account_id,
            func.count(),
            func.count(UpstreamLock.removed_at),
        ).group_by(UpstreamLock.account_id)
    )
    return {row[0]: (row[1], row[2]) for row in rows}


def count_calls(
    session: Session, account_id: int, calls: int, at: datetime, error: str | None
) -> None:
    """Record ``calls`` more requests to the account's upstream, the contact and its error."""
    session.execute(
        update(UpstreamLink)
        .where(UpstreamLink.account_id == account_id)
        .values(
            calls=UpstreamLink.calls + calls,
            last_contact_at=at,
            last_error=error,
            updated_at=at,
        )
    )


def upstream_of(session: Session, ids: Iterable[int]) -> dict[int, UpstreamLock]:
    wanted = list(ids)
    if not wanted:
        return {}
    return {
        row.smartlock_id: row
        for row in session.scalars(
            select(UpstreamLock).where(UpstreamLock.smartlock_id.in_(wanted))
        )
    }


def emulation(session: Session, account_id: int) -> NukiEmulation | None:
    return session.get(NukiEmulation, account_id)


def take_failure(session: Session, account_id: int) -> int | None:
    """Spend one of the account's "fail next" requests; its status, or None (atomic)."""
    done = session.execute(
        update(NukiEmulation)
        .where(NukiEmulation.account_id == account_id, NukiEmulation.fail_next > 0)
        .values(fail_next=NukiEmulation.fail_next - 1)
        .returning(NukiEmulation.fail_status)
    ).first()
    return None if done is None else int(done[0])


def take_too_many_requests(session: Session, account_id: int) -> bool:
    """Spend one of the account's "429 next" requests; True if there was one (atomic)."""
    done = session.execute(
        update(NukiEmulation)
        .where(NukiEmulation.account_id == account_id, NukiEmulation.too_many_requests > 0)
        .values(too_many_requests=NukiEmulation.too_many_requests - 1)
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]


def refresh_lock(
    session: Session,
    account_id: int,
    lock: Smartlock,
    row: UpstreamLock | None,
    info: UpstreamLockInfo,
    now: datetime,
) -> None:
    """An imported lock as the upstream's ``GET /smartlock`` lists it now: its name, type,
    keypad and zone (the lock's row touched only when one changed), and the upstream's own
    config, state and server state; listed again if it was marked removed."""
    if (lock.name, lock.type, lock.keypad, lock.timezone) != (
        info.name,
        info.type,
        info.keypad,
        info.timezone,
    ):
        lock.name, lock.type, lock.keypad = info.name, info.type, info.keypad
        lock.timezone = info.timezone
        lock.updated_at = now
    if row is None:
        session.add(new_upstream_row(account_id, info, now))
    else:
        row.config, row.state, row.server_state = info.config, info.state, info.server_state
        row.seen_at, row.removed_at = now, None


def new_upstream_row(account_id: int, info: UpstreamLockInfo, now: datetime) -> UpstreamLock:
    return UpstreamLock(
        smartlock_id=info.smartlock_id,
        account_id=account_id,
        config=info.config,
        state=info.state,
        server_state=info.server_state,
        seen_at=now,
    )


# --- the periodic pull of state and log (devices.upstream_sync) --------------------------------


def due_links(session: Session) -> list[int]:
    """The accounts whose pull of state and log is due, on the database's clock."""
    return list(
        session.scalars(
            select(UpstreamLink.account_id)
            .where(UpstreamLink.sync_due_at <= db_now(session))
            .order_by(UpstreamLink.account_id)
        )
    )


def claim_sync(session: Session, account_id: int, seconds: float) -> bool:
    """Take the account's due pull: moves the next one ``seconds`` on, if it is due now (one
    process wins; the others see it not due). False if it is not due or not linked."""
    now = db_now(session)
    done = session.execute(
        update(UpstreamLink)
        .where(UpstreamLink.account_id == account_id, UpstreamLink.sync_due_at <= now)
        .values(sync_due_at=now + seconds)
        .execution_options(synchronize_session=False)
    )
    return done.rowcount == 1  # type: ignore[attr-defined]


def count_pull(
    session: Session,
    account_id: int,
    calls: int,
    at: datetime,
    error: str | None,
    broken_mark: str,
) -> None:
    """``count_calls`` for a pull of state and log, which never replaces a last error that
    begins with ``broken_mark`` (a broken link is mended only by linking again, even when
    this pull's requests went through before the token was refused)."""
    broken = UpstreamLink.last_error.startswith(broken_mark, autoescape=True)
    session.execute(
        update(UpstreamLink)
        .where(UpstreamLink.account_id == account_id)
        .values(
            calls=UpstreamLink.calls + calls,
            last_contact_at=at,
            last_error=case((broken, UpstreamLink.last_error), else_=literal(error, Text())),
            updated_at=at,
        )
        .execution_options(synchronize_session=False)
    )


def sync_now(session: Session, account_id: int) -> bool:
    """Make the account's pull due at once (after an action); False if it is not linked."""
    done = session.execute(
        update(UpstreamLink)
        .where(UpstreamLink.account_id == account_id)
        .values(sync_due_at=0.0)
        .execution_options(synchronize_session=False)
    )
    return done.rowcount == 1  # type: ignore[attr-defined]


def known_log_ids(session: Session, account_id: int, ids: Iterable[str]) -> set[str]:
    wanted = list(ids)
    if not wanted:
        return set()
    return set(
        session.scalars(
            select(SmartlockLog.id).where(
                SmartlockLog.account_id == account_id, SmartlockLog.id.in_(wanted)
            )
        )
    )


def keys_by_ref(
    session: Session, account_id: int, refs: Iterable[str]
) -> dict[tuple[int, str], SmartlockAuth]:
    """The account's keys the upstream calls by these ids (their ``device_ref``), by
    (smartlockId, upstream id)."""
    wanted = list(refs)
    if not wanted:
        return {}
    keys = session.scalars(
        select(SmartlockAuth).where(
            SmartlockAuth.account_id == account_id, SmartlockAuth.device_ref.in_(wanted)
        )
    )
    return {(key.smartlock_id, key.device_ref or ""): key for key in keys}


def settle_sent_open(
    session: Session, account_id: int, entry: Any, marker: str, within_seconds: float
) -> bool:
    """Nuki's entry of a web action in place of Keyhouse's entry of a guest's Open sent through
    the cloud (the oldest one of that lock and action still marked ``marker``, up to
    ``within_seconds`` before it): that entry takes Nuki's id, date, state and error and keeps
    the key it names. True if one was settled. Two processes pulling at once: the UPDATE is
    conditional, so one settles it and the other inserts nothing (the id is there)."""
    if session.scalar(select(SmartlockLog.seq).where(SmartlockLog.id == entry.id)) is not None:
        return False  # kept already (a pull that did not see Keyhouse's entry yet)
    earliest = entry.date - timedelta(seconds=within_seconds)
    latest = entry.date + timedelta(seconds=5)
    sent = session.scalar(
        select(SmartlockLog.seq)
        .where(
            SmartlockLog.account_id == account_id,
            SmartlockLog.smartlock_id == entry.smartlock_id,
            SmartlockLog.action == entry.action,
            SmartlockLog.error == marker,
            SmartlockLog.date >= earliest,
            SmartlockLog.date <= latest,
        )
        .order_by(SmartlockLog.seq)
        .limit(1)
    )
    if sent is None:
        return False
    done = session.execute(
        update(SmartlockLog)
        .where(SmartlockLog.seq == sent, SmartlockLog.error == marker)
        .values(id=entry.id, date=entry.date, state=entry.state, error=entry.error)
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]


def add_log(session: Session, values: dict[str, Any]) -> bool:
    """Insert one activity-log entry unless its id is there already (another process pulled
    it first): ``INSERT … ON CONFLICT DO NOTHING``. True if this one inserted it."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    made = session.scalar(
        insert(SmartlockLog)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(SmartlockLog.seq)
    )
    return made is not None


def imported_types(session: Session, account_id: int) -> dict[int, int]:
    """The account's imported locks: smartlockId -> its lock type."""
    rows = session.execute(
        select(Smartlock.id, Smartlock.type)
        .join(UpstreamLock, UpstreamLock.smartlock_id == Smartlock.id)
        .where(UpstreamLock.account_id == account_id, Smartlock.account_id == account_id)
    )
    return {row.id: row.type for row in rows}
