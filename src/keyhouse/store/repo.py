"""Repository functions. Every query that reads or changes account data takes ``account_id``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from keyhouse.rules.ids import new_object_id
from keyhouse.store.models import (
    AccountUser,
    ApiToken,
    DeviceOperation,
    SimulatedLock,
    Smartlock,
    SmartlockAuth,
)


class ApiTokenRow(NamedTuple):
    id: int
    account_id: int
    scopes: str


def token_by_hash(session: Session, token_hash: str) -> ApiToken | None:
    return session.scalars(select(ApiToken).where(ApiToken.token_hash == token_hash)).first()


def token_with_keys_version(
    session: Session, token_hash: str, smartlock_id: int
) -> tuple[ApiTokenRow, int | None] | None:
    """The token's columns, and the key-listing version of the lock if it is in the token's
    account: one plain query (no ORM objects) for the hot path."""
    row = session.execute(
        select(ApiToken.id, ApiToken.account_id, ApiToken.scopes, Smartlock.keys_version)
        .outerjoin(
            Smartlock,
            (Smartlock.account_id == ApiToken.account_id) & (Smartlock.id == smartlock_id),
        )
        .where(ApiToken.token_hash == token_hash)
    ).first()
    return None if row is None else (ApiTokenRow(row[0], row[1], row[2]), row[3])


# --- smartlocks ---------------------------------------------------------------------------


def lock(session: Session, account_id: int, smartlock_id: int) -> Smartlock | None:
    return session.scalars(
        select(Smartlock).where(Smartlock.account_id == account_id, Smartlock.id == smartlock_id)
    ).first()


def locks_by_ids(session: Session, account_id: int, ids: Iterable[int]) -> dict[int, Smartlock]:
    wanted = set(ids)
    if not wanted:
        return {}
    rows = session.scalars(
        select(Smartlock).where(Smartlock.account_id == account_id, Smartlock.id.in_(wanted))
    )
    return {row.id: row for row in rows}


def list_locks(
    session: Session, account_id: int, *, auth_id: int | None = None, type_: int | None = None
) -> Sequence[tuple[Smartlock, SimulatedLock | None]]:
    query = (
        select(Smartlock, SimulatedLock)
        .outerjoin(SimulatedLock, SimulatedLock.smartlock_id == Smartlock.id)
        .where(Smartlock.account_id == account_id)
        .order_by(Smartlock.id)
    )
    if auth_id is not None:
        query = query.where(Smartlock.auth_id == auth_id)
    if type_ is not None:
        query = query.where(Smartlock.type == type_)
    return [(row[0], row[1]) for row in session.execute(query)]


# --- account users ------------------------------------------------------------------------


def user(session: Session, account_id: int, account_user_id: int) -> AccountUser | None:
    return session.scalars(
        select(AccountUser).where(
            AccountUser.account_id == account_id, AccountUser.id == account_user_id
        )
    ).first()


def user_with_email(
    session: Session, account_id: int, email_key: str, *, other_than: int | None = None
) -> AccountUser | None:
    query = select(AccountUser).where(
        AccountUser.account_id == account_id, AccountUser.email_key == email_key
    )
    if other_than is not None:
        query = query.where(AccountUser.id != other_than)
    return session.scalars(query).first()


def list_users(
    session: Session, account_id: int, *, email_key: str | None, offset: int, limit: int
) -> Sequence[AccountUser]:
    query = select(AccountUser).where(AccountUser.account_id == account_id)
    if email_key is not None:
        query = query.where(AccountUser.email_key == email_key)
    return session.scalars(query.order_by(AccountUser.id).offset(offset).limit(limit)).all()


# --- keys (smartlock authorizations) ------------------------------------------------------


def auth(
    session: Session, account_id: int, auth_key: str, *, smartlock_id: int | None = None
) -> SmartlockAuth | None:
    query = select(SmartlockAuth).where(
        SmartlockAuth.account_id == account_id, SmartlockAuth.id == auth_key
    )
    if smartlock_id is not None:
        query = query.where(SmartlockAuth.smartlock_id == smartlock_id)
    return session.scalars(query).first()


def auths_by_ids(
    session: Session, account_id: int, auth_keys: Iterable[str]
) -> dict[str, SmartlockAuth]:
    wanted = set(auth_keys)
    if not wanted:
        return {}
    rows = session.scalars(
        select(SmartlockAuth).where(
            SmartlockAuth.account_id == account_id, SmartlockAuth.id.in_(wanted)
        )
    )
    return {row.id: row for row in rows}


def list_auths(
    session: Session,
    account_id: int,
    *,
    smartlock_id: int | None = None,
    types: Sequence[int] | None = None,
    account_user_id: int | None = None,
    without_user: bool = False,
) -> Sequence[SmartlockAuth]:
    query = select(SmartlockAuth).where(SmartlockAuth.account_id == account_id)
    if smartlock_id is not None:
        query = query.where(SmartlockAuth.smartlock_id == smartlock_id)
    if types:
        query = query.where(SmartlockAuth.type.in_(list(types)))
    if account_user_id is not None:
        query = query.where(SmartlockAuth.account_user_id == account_user_id)
    if without_user:
        query = query.where(SmartlockAuth.account_user_id.is_(None))
    return session.scalars(
        query.order_by(SmartlockAuth.smartlock_id, SmartlockAuth.created_at, SmartlockAuth.id)
    ).all()


def auth_counts(session: Session, account_id: int, smartlock_id: int) -> tuple[int, int]:
    """(all keys, keypad codes) held for a lock, counting those still being created."""
    rows = session.execute(
        select(SmartlockAuth.type, func.count())
        .where(SmartlockAuth.account_id == account_id, SmartlockAuth.smartlock_id == smartlock_id)
        .group_by(SmartlockAuth.type)
    ).all()
    total = sum(count for _, count in rows)
    keypad = sum(count for type_, count in rows if type_ == 13)
    return total, keypad


def auth_with_code(
    session: Session, account_id: int, smartlock_id: int, code: int, *, other_than: str | None
) -> SmartlockAuth | None:
    query = select(SmartlockAuth).where(
        SmartlockAuth.account_id == account_id,
        SmartlockAuth.smartlock_id == smartlock_id,
        SmartlockAuth.code == code,
    )
    if other_than is not None:
        query = query.where(SmartlockAuth.id != other_than)
    return session.scalars(query).first()


def enqueue_operation(
    session: Session, row: SmartlockAuth, kind: str, payload: dict[str, Any]
) -> DeviceOperation:
    """Queue a change of ``row`` for its lock and mark the key as waiting for it."""
    operation = DeviceOperation(
        operation_id=new_object_id(),
        account_id=row.account_id,
        smartlock_id=row.smartlock_id,
        auth_key=row.id,
        kind=kind,
        payload=payload,
    )
    session.add(operation)
    bump_keys_version(session, row.smartlock_id)
    row.operation_id = operation.operation_id
    row.sync_state = "pending"
    row.error = None
    return operation


def bump_keys_version(session: Session, smartlock_id: int) -> None:
    """Mark the lock's key listing as changed."""
    session.execute(
        update(Smartlock)
        .where(Smartlock.id == smartlock_id)
        .values(keys_version=Smartlock.keys_version + 1)
    )


def enqueue_orphan_removal(
    session: Session, account_id: int, smartlock_id: int, auth_key: str
) -> DeviceOperation:
    """Queue the removal of an authorization the lock holds but the server does not know."""
    operation = DeviceOperation(
        operation_id=new_object_id(),
        account_id=account_id,
        smartlock_id=smartlock_id,
        auth_key=auth_key,
        kind="remove_auth",
        payload={},
    )
    session.add(operation)
    return operation
