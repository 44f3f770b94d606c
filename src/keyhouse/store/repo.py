"""Repository functions. Every query that reads or changes account data takes ``account_id``."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Integer, Row, Select, bindparam, func, or_, select, text, tuple_, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from keyhouse.rules.ids import new_object_id
from keyhouse.store.models import (
    UNSYNCED,
    AccountUser,
    ApiToken,
    SimulatedLock,
    Smartlock,
    SmartlockAuth,
)
from keyhouse.store.notify import notify_lock

T = TypeVar("T", int, str)


class ApiTokenRow(NamedTuple):
    id: int
    account_id: int
    scopes: str
    name: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


TOKEN_COLUMNS = (
    ApiToken.id,
    ApiToken.account_id,
    ApiToken.scopes,
    ApiToken.name,
    ApiToken.expires_at,
    ApiToken.revoked_at,
    ApiToken.last_used_at,
)


def _connection(session: Session | Connection) -> Connection:
    """Where plain statements run: a session's connection, or the connection given."""
    return session.connection() if isinstance(session, Session) else session


# Built once: every request looks its token up (building the statement cost more than
# running it), on the session's connection (plain rows, no ORM).
_TOKEN_WITH_KEYS_VERSION = (
    select(*TOKEN_COLUMNS, Smartlock.keys_version)
    .outerjoin(
        Smartlock,
        (Smartlock.account_id == ApiToken.account_id) & (Smartlock.id == bindparam("smartlock_id")),
    )
    .where(ApiToken.token_hash == bindparam("token_hash"))
)
_TOKEN_BY_HASH = select(*TOKEN_COLUMNS).where(ApiToken.token_hash == bindparam("token_hash"))


def token_with_keys_version(
    session: Session | Connection, token_hash: str, smartlock_id: int
) -> tuple[ApiTokenRow, int | None] | None:
    """The token's columns, and the key-listing version of the lock if it is in the token's
    account: one plain query (no ORM objects) for the hot path."""
    row = (
        _connection(session)
        .execute(_TOKEN_WITH_KEYS_VERSION, {"token_hash": token_hash, "smartlock_id": smartlock_id})
        .first()
    )
    return None if row is None else (ApiTokenRow(*row[:-1]), row[-1])


def token_row_by_hash(session: Session | Connection, token_hash: str) -> ApiTokenRow | None:
    row = _connection(session).execute(_TOKEN_BY_HASH, {"token_hash": token_hash}).first()
    return None if row is None else ApiTokenRow(*row)


def record_token_use(session: Session, token_id: int, now: datetime, every: timedelta) -> None:
    """Set the token's ``last_used_at`` unless it was set less than ``every`` ago."""
    session.execute(
        update(ApiToken)
        .where(
            ApiToken.id == token_id,
            (ApiToken.last_used_at.is_(None)) | (ApiToken.last_used_at < now - every),
        )
        .values(last_used_at=now)
    )


# --- smartlocks ---------------------------------------------------------------------------


def lock(session: Session, account_id: int, smartlock_id: int) -> Smartlock | None:
    return session.scalars(
        select(Smartlock).where(Smartlock.account_id == account_id, Smartlock.id == smartlock_id)
    ).first()


# The most values one ``IN`` list binds: below SQLite's 32,766 variables and PostgreSQL's
# 65,535 parameters per statement, whatever the edge lets through.
IN_CHUNK = 1000


def chunks(values: Iterable[T], size: int = IN_CHUNK) -> Iterator[list[T]]:
    """Sorted values in lists of at most ``size``: one ``IN`` list each."""
    ordered = sorted(set(values))  # type: ignore[type-var]
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


def locks_by_ids(session: Session, account_id: int, ids: Iterable[int]) -> dict[int, Smartlock]:
    found: dict[int, Smartlock] = {}
    for chunk in chunks(ids):
        rows = session.scalars(
            select(Smartlock).where(Smartlock.account_id == account_id, Smartlock.id.in_(chunk))
        )
        found.update((row.id, row) for row in rows)
    return found


def lock_smartlocks(session: Session, ids: Iterable[int]) -> None:
    """Serialize this transaction with every other writer of these locks' keys.

    PostgreSQL: ``SELECT … FOR NO KEY UPDATE`` on the smartlock rows in ascending id, the one
    order every writer uses (so two writers never wait for each other in a circle), and a lock
    that does not block the foreign-key checks of inserted keys. Call it before reading what
    the write depends on. SQLite: a no-op, since a write session holds the database's write
    lock from its start (``BEGIN IMMEDIATE``).
    """
    if session.get_bind().dialect.name == "sqlite":
        return
    for chunk in chunks(ids):  # ascending chunks keep the one ascending order
        session.execute(
            select(Smartlock.id)
            .where(Smartlock.id.in_(chunk))
            .order_by(Smartlock.id)
            .with_for_update(key_share=True)
        ).all()


class LockRow(NamedTuple):
    """A lock as its listing shows it (the model's attribute names)."""

    id: int
    account_id: int
    type: int
    auth_id: int
    name: str
    favorite: bool
    keypad: bool
    timezone: str
    virtual: bool
    nuki_id: str
    checked_at: datetime | None
    created_at: datetime
    updated_at: datetime


class DeviceRow(NamedTuple):
    """A virtual lock's live state as the lock listing shows it."""

    online: bool
    state: int
    trigger: int
    last_action: int
    battery_charge: int
    door_state: int


_LOCK_COLUMNS = tuple(getattr(Smartlock, name) for name in LockRow._fields)
_DEVICE_COLUMNS = (
    SimulatedLock.smartlock_id,
    *(getattr(SimulatedLock, name) for name in DeviceRow._fields),
)


def list_locks(
    session: Session,
    account_id: int,
    *,
    auth_id: int | None = None,
    type_: int | None = None,
    after: int | None = None,
    limit: int | None = None,
) -> list[tuple[LockRow, DeviceRow | None]]:
    """The account's locks by id; from the one after ``after`` (a lock id), at most ``limit``:
    plain rows, from a statement built once per combination of filters."""
    statement = _locks_statement(
        auth_id is not None, type_ is not None, after is not None, limit is not None
    )
    params = {"account_id": account_id, "auth_id": auth_id, "type": type_, "after": after}
    if limit is not None:
        params["limit"] = limit
    split = len(_LOCK_COLUMNS)
    return [
        (
            LockRow._make(row[:split]),
            None if row[split] is None else DeviceRow._make(row[split + 1 :]),
        )
        for row in session.connection().execute(statement, params)
    ]


@functools.cache
def _locks_statement(by_auth: bool, by_type: bool, after: bool, limit: bool) -> Select[Any]:
    """:func:`locks_query` as plain columns, with bound parameters in place of the values."""
    query = (
        select(*_LOCK_COLUMNS, *_DEVICE_COLUMNS)
        .outerjoin(SimulatedLock, SimulatedLock.smartlock_id == Smartlock.id)
        .where(Smartlock.account_id == bindparam("account_id"))
        .order_by(Smartlock.id)
    )
    if by_auth:
        query = query.where(Smartlock.auth_id == bindparam("auth_id"))
    if by_type:
        query = query.where(Smartlock.type == bindparam("type"))
    if after:
        query = query.where(Smartlock.id > bindparam("after", type_=Smartlock.id.type))
    if limit:
        query = query.limit(bindparam("limit", type_=Integer))
    return query


def locks_query(
    account_id: int,
    *,
    auth_id: int | None = None,
    type_: int | None = None,
    after: int | None = None,
    limit: int | None = None,
) -> Select[tuple[Smartlock, SimulatedLock]]:
    """The query of :func:`list_locks`: a range of ``ix_lock_account_id``."""
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
    if after is not None:
        query = query.where(Smartlock.id > after)
    if limit is not None:
        query = query.limit(limit)
    return query


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
    session: Session,
    account_id: int,
    *,
    email_key: str | None,
    offset: int,
    limit: int,
    after: int | None = None,
) -> Sequence[AccountUser]:
    """The account's users by id: those after ``after`` (a user id), skipping ``offset``."""
    query = select(AccountUser).where(AccountUser.account_id == account_id)
    if email_key is not None:
        query = query.where(AccountUser.email_key == email_key)
    if after is not None:
        query = query.where(AccountUser.id > after)
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
    found: dict[str, SmartlockAuth] = {}
    for chunk in chunks(auth_keys):
        rows = session.scalars(
            select(SmartlockAuth).where(
                SmartlockAuth.account_id == account_id, SmartlockAuth.id.in_(chunk)
            )
        )
        found.update((row.id, row) for row in rows)
    return found


# What a key listing shows (``services.present.auth_shape``), read as plain rows: building ORM
# objects took more time than the query and the JSON together.
LISTING_COLUMNS = (
    SmartlockAuth.id,
    SmartlockAuth.smartlock_id,
    SmartlockAuth.account_user_id,
    SmartlockAuth.auth_id,
    SmartlockAuth.code,
    SmartlockAuth.type,
    SmartlockAuth.name,
    SmartlockAuth.enabled,
    SmartlockAuth.remote_allowed,
    SmartlockAuth.lock_count,
    SmartlockAuth.allowed_from_date,
    SmartlockAuth.allowed_until_date,
    SmartlockAuth.allowed_week_days,
    SmartlockAuth.allowed_from_time,
    SmartlockAuth.allowed_until_time,
    SmartlockAuth.last_active_date,
    SmartlockAuth.created_at,
    SmartlockAuth.updated_at,
    SmartlockAuth.operation_id,
    SmartlockAuth.error,
    SmartlockAuth.smart_actions_enabled,
    SmartlockAuth.revision,
    SmartlockAuth.applied_revision,
    SmartlockAuth.failed_revision,
    SmartlockAuth.deleting,
    SmartlockAuth.verified_at,
    SmartlockAuth.origin,
)


def list_auth_rows(
    session: Session | Connection,
    account_id: int,
    *,
    smartlock_id: int | None = None,
    types: Sequence[int] | None = None,
    account_user_id: int | None = None,
    without_user: bool = False,
    after: tuple[Any, ...] | None = None,
    limit: int | None = None,
) -> Sequence[Row[Any]]:
    """:func:`list_auths` as plain rows of ``LISTING_COLUMNS`` (named like the model's
    attributes), for the listings: one statement built once per combination of filters, run
    on the session's connection (building it per request cost as much as running it)."""
    statement = _listing_statement(
        smartlock_id is not None,
        bool(types),
        account_user_id is not None,
        without_user,
        after is not None,
        limit is not None,
    )
    params: dict[str, Any] = {"account_id": account_id}
    if smartlock_id is not None:
        params["smartlock_id"] = smartlock_id
    if types:
        params["types"] = list(types)
    if account_user_id is not None:
        params["account_user_id"] = account_user_id
    if after is not None:
        params["after_lock"], params["after_created"], params["after_id"] = after
    if limit is not None:
        params["limit"] = limit
    return _connection(session).execute(statement, params).all()


@functools.cache
def _listing_statement(
    by_lock: bool, by_types: bool, by_user: bool, without_user: bool, after: bool, limit: bool
) -> Select[Any]:
    """:func:`auths_query` with bound parameters in place of the values."""
    query = select(*LISTING_COLUMNS).where(SmartlockAuth.account_id == bindparam("account_id"))
    if by_lock:
        query = query.where(SmartlockAuth.smartlock_id == bindparam("smartlock_id"))
    if by_types:
        query = query.where(SmartlockAuth.type.in_(bindparam("types", expanding=True)))
    if by_user:
        query = query.where(SmartlockAuth.account_user_id == bindparam("account_user_id"))
    if without_user:
        query = query.where(SmartlockAuth.account_user_id.is_(None))
    if after:
        cursor = (
            bindparam("after_lock", type_=SmartlockAuth.smartlock_id.type),
            bindparam("after_created", type_=SmartlockAuth.created_at.type),
            bindparam("after_id", type_=SmartlockAuth.id.type),
        )
        query = query.where(tuple_(*AUTH_ORDER) > tuple_(*cursor))
    query = query.order_by(*AUTH_ORDER)
    if limit:
        query = query.limit(bindparam("limit", type_=Integer))
    return query


def list_auths(
    session: Session,
    account_id: int,
    *,
    smartlock_id: int | None = None,
    types: Sequence[int] | None = None,
    account_user_id: int | None = None,
    without_user: bool = False,
    after: tuple[Any, ...] | None = None,
    limit: int | None = None,
) -> Sequence[SmartlockAuth]:
    """Keys by lock, then creation, then id (:func:`auth_sort_key`): those after the sort key
    ``after``, at most ``limit``."""
    query = auths_query(
        account_id,
        smartlock_id=smartlock_id,
        types=types,
        account_user_id=account_user_id,
        without_user=without_user,
        after=after,
        limit=limit,
    )
    return session.scalars(query).all()


def auths_query(
    account_id: int,
    *,
    smartlock_id: int | None = None,
    types: Sequence[int] | None = None,
    account_user_id: int | None = None,
    without_user: bool = False,
    after: tuple[Any, ...] | None = None,
    limit: int | None = None,
) -> Select[tuple[SmartlockAuth]]:
    """The account's keys with these filters, in the listing's order (lock, creation, id):
    a range of ``ix_auth_listing``, or of the filter's own index (``ix_auth_user``,
    ``ix_auth_account_type``), each in this order (see ``SmartlockAuth``)."""
    query = select(SmartlockAuth).where(SmartlockAuth.account_id == account_id)
    if smartlock_id is not None:
        query = query.where(SmartlockAuth.smartlock_id == smartlock_id)
    if types:
        query = query.where(SmartlockAuth.type.in_(list(types)))
    if account_user_id is not None:
        query = query.where(SmartlockAuth.account_user_id == account_user_id)
    if without_user:
        query = query.where(SmartlockAuth.account_user_id.is_(None))
    if after is not None:
        query = query.where(tuple_(*AUTH_ORDER) > tuple(after))
    query = query.order_by(*AUTH_ORDER)
    if limit is not None:
        query = query.limit(limit)
    return query


AUTH_ORDER = (SmartlockAuth.smartlock_id, SmartlockAuth.created_at, SmartlockAuth.id)


def auth_sort_key(row: SmartlockAuth | Row[Any]) -> tuple[int, datetime, str]:
    """Where ``row`` stands in every key listing (the values of ``AUTH_ORDER``)."""
    return (row.smartlock_id, row.created_at, row.id)


def auth_counts(session: Session, account_id: int, smartlock_id: int) -> tuple[int, int]:
    """(all keys, keypad codes) of a lock: live keys, those still being created included;
    tombstones are not counted (the reconciler removes them before it puts)."""
    rows = session.execute(
        select(SmartlockAuth.type, func.count())
        .where(
            SmartlockAuth.account_id == account_id,
            SmartlockAuth.smartlock_id == smartlock_id,
            SmartlockAuth.deleting.is_(False),
        )
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
        SmartlockAuth.deleting.is_(False),
    )
    if other_than is not None:
        query = query.where(SmartlockAuth.id != other_than)
    return session.scalars(query).first()


def mark_changed(session: Session, row: SmartlockAuth) -> None:
    """A new desired state of ``row`` (created, changed or deleted): a new revision for the
    reconciler to bring to the lock, and a new listing version."""
    if row.revision is None:  # a new row, not yet flushed
        row.revision = 1
        row.applied_revision = 0
    else:
        row.revision += 1
    row.operation_id = new_object_id()
    row.error = None
    row.retry_at = None
    row.attempts = 0
    bump_keys_version(session, row.smartlock_id)
    notify_lock(session, row.smartlock_id)


def bump_keys_version(session: Session, smartlock_id: int) -> None:
    """Mark the lock's key listing as changed."""
    session.execute(
        update(Smartlock)
        .where(Smartlock.id == smartlock_id)
        .values(keys_version=Smartlock.keys_version + 1)
    )


def mark_checked(session: Session, smartlock_id: int, when: datetime) -> None:
    """The lock's keys were compared with what it holds at ``when``."""
    session.execute(
        update(Smartlock)
        .where(Smartlock.id == smartlock_id)
        .values(checked_at=when, keys_version=Smartlock.keys_version + 1)
    )


# --- the reconciler's reads ---------------------------------------------------------------

_UNSYNCED = text(f"({UNSYNCED})")


def _due(now: datetime):  # type: ignore[no-untyped-def]
    return or_(SmartlockAuth.retry_at.is_(None), SmartlockAuth.retry_at <= now)


def _not_failed():  # type: ignore[no-untyped-def]
    return or_(
        SmartlockAuth.failed_revision.is_(None),
        SmartlockAuth.failed_revision < SmartlockAuth.revision,
    )


def locks_due_for_check(
    session: Session, checked_before: datetime, limit: int | None = None
) -> list[int]:
    """Locks whose holdings were last compared with the keys before ``checked_before``, the
    longest unchecked first, at most ``limit``."""
    query = (
        select(Smartlock.id)
        .where(or_(Smartlock.checked_at.is_(None), Smartlock.checked_at < checked_before))
        .order_by(Smartlock.checked_at.asc().nulls_first(), Smartlock.id)
    )
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def count_locks(session: Session) -> int:
    """How many locks this store holds, in every account (the reconciler's share of checks)."""
    return session.scalar(select(func.count()).select_from(Smartlock)) or 0


def check_due(session: Session, smartlock_id: int, checked_before: datetime) -> bool:
    checked = session.scalar(select(Smartlock.checked_at).where(Smartlock.id == smartlock_id))
    return checked is None or checked < checked_before


def locks_with_work(
    session: Session, now: datetime, *, among: Sequence[int] | None = None
) -> list[int]:
    """Locks (of ``among``, if given) with a tombstone or a key ahead of the lock's copy that is
    due now."""
    query = select(SmartlockAuth.smartlock_id).where(_UNSYNCED, _not_failed(), _due(now))
    if among is not None:
        query = query.where(SmartlockAuth.smartlock_id.in_(list(among)))
    return list(session.scalars(query.distinct()))


def next_work(session: Session, smartlock_id: int, now: datetime) -> Row[Any] | None:
    """The lock's next key to bring to it: tombstones first (a freed slot or keypad code is
    free on the lock before a put needs it), then keys whose revision is ahead of the lock's.
    A plain row of the key's columns (read by name like a key, e.g. ``.revision``), no ORM
    object: the reconciler only reads it, in the transaction that found it or after."""
    return session.execute(
        select(SmartlockAuth.__table__)
        .where(SmartlockAuth.smartlock_id == smartlock_id, _UNSYNCED, _not_failed(), _due(now))
        .order_by(SmartlockAuth.deleting.desc(), SmartlockAuth.updated_at, SmartlockAuth.id)
        .limit(1)
    ).first()


def unsynced_count(session: Session, smartlock_id: int) -> int:
    """How many of the lock's keys wait for it (tombstones and keys ahead), failed ones not."""
    return (
        session.scalar(
            select(func.count()).where(
                SmartlockAuth.smartlock_id == smartlock_id, _UNSYNCED, _not_failed()
            )
        )
        or 0
    )
