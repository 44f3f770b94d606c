"""Finding the caller's locks and keys, and the answers when they are not theirs."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.orm import Session

from keyhouse.errors import NotFound
from keyhouse.services.caller import Caller
from keyhouse.store import repo
from keyhouse.store.models import SmartlockAuth


def lock_not_found(smartlock_id: int, *, status: int = 403) -> NotFound:
    return NotFound(
        f"smartlock {smartlock_id} does not exist in your account: list your locks with "
        "GET /smartlock and use their smartlockId",
        field="smartlockId",
        status=status,
    )


def auth_not_found(auth_key: str, smartlock_id: int | None = None) -> NotFound:
    where = f" on smartlock {smartlock_id}" if smartlock_id is not None else ""
    return NotFound(
        f"no key with id {auth_key!r}{where} in your account: list the keys with "
        f"GET /smartlock/auth and use their 24-hex 'id'",
        field="id",
    )


def serialize_writers(session: Session, smartlock_ids: Iterable[int]) -> None:
    """Take the write locks of these locks' keys (ascending smartlock id), then forget what
    this session read before: what follows reads the keys as the last writer left them."""
    repo.lock_smartlocks(session, smartlock_ids)
    # SQLite: the write lock was taken before this session's first read (BEGIN IMMEDIATE), so
    # nothing it read can be stale, and reading it all again would only cost time.
    if session.get_bind().dialect.name != "sqlite":
        session.expire_all()


def key_on_lock(
    session: Session, caller: Caller, smartlock_id: int, auth_key: str, *, write: bool = False
) -> SmartlockAuth:
    """The caller's key ``auth_key`` on the caller's lock ``smartlock_id``, or the 403/404;
    with ``write``, read after taking the lock's write lock."""
    if repo.lock(session, caller.account_id, smartlock_id) is None:
        raise lock_not_found(smartlock_id)
    if write:
        serialize_writers(session, [smartlock_id])
    row = repo.auth(session, caller.account_id, auth_key, smartlock_id=smartlock_id)
    if row is None:
        raise auth_not_found(auth_key, smartlock_id)
    return row
