"""Queries for linked Nuki Web accounts: links, imported locks, the stand-in's switches."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from keyhouse.store.models import Account, NukiEmulation, Smartlock, UpstreamLink, UpstreamLock


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
