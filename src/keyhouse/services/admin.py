"""Operator tasks: accounts, API tokens, locks, and the demo set-up of a first start."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from keyhouse.devices.simulator import VirtualLockLink
from keyhouse.errors import Conflict, NotFound, ValidationFailed
from keyhouse.rules.dates import utcnow
from keyhouse.rules.ids import new_nuki_id, smartlock_id
from keyhouse.rules.secrets_ import hash_token, new_api_token
from keyhouse.rules.windows import is_valid_timezone
from keyhouse.services import audit
from keyhouse.services.audit import OPERATOR, SYSTEM, Actor
from keyhouse.services.caller import ALL_SCOPES
from keyhouse.store import repo
from keyhouse.store.database import Database
from keyhouse.store.models import (
    Account,
    ApiToken,
    SimulatedAuth,
    SimulatedLock,
    Smartlock,
    SmartlockAuth,
)

LOCK_TYPES = {0: "keyturner", 2: "opener", 3: "smartdoor", 4: "smartlock 3.0/4"}
DEFAULT_TIMEZONE = "Europe/Vienna"
LOCK_NAME_MAX = 200
TOKEN_NAME_MAX = 200


def create_account(session: Session, *, email: str, name: str | None = None) -> Account:
    try:
        email = validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValidationFailed(
            f"{email!r} is not a valid e-mail address: {exc}", field="email", rule="format"
        ) from None
    taken = session.scalar(select(Account.id).where(func.lower(Account.email) == email.lower()))
    if taken is not None:
        raise Conflict(
            f"account {taken} already has the e-mail address {email}", field="email", rule="unique"
        )
    account = Account(email=email, name=name or email.split("@")[0])
    session.add(account)
    session.flush()
    return account


def create_token(
    session: Session,
    *,
    account_id: int,
    scopes: Sequence[str] = (),
    name: str = "api token",
    expires_at: datetime | None = None,
    who: audit.Who = OPERATOR,
) -> str:
    """A new token for the account; it is returned once and stored only as a hash."""
    if session.get(Account, account_id) is None:
        raise NotFound(f"account {account_id} does not exist", field="account")
    if not name.strip() or len(name) > TOKEN_NAME_MAX:
        raise ValidationFailed(
            f"a token's name must have 1 to {TOKEN_NAME_MAX} characters, not {len(name)}",
            field="name",
            rule="length",
        )
    if expires_at is not None and expires_at <= utcnow():
        raise ValidationFailed(
            "the expiry is in the past: a token must expire later than now",
            field="expiresAt",
            rule="future",
        )
    unknown = [scope for scope in scopes if scope not in ALL_SCOPES]
    if unknown:
        raise ValidationFailed(
            f"unknown scope(s) {', '.join(unknown)}: choose from {', '.join(ALL_SCOPES)}",
            field="scope",
            rule="enum",
        )
    token = new_api_token()
    row = ApiToken(
        account_id=account_id,
        name=name,
        token_hash=hash_token(token),
        scopes=" ".join(scopes or ALL_SCOPES),
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        who,
        "token.create",
        "token",
        row.id,
        after=audit.token_view(row),
        account_id=account_id,
    )
    return token


@dataclass(frozen=True)
class TokenSummary:
    """A token as listed: never its secret (only its hash is stored anyway)."""

    id: int
    account_id: int
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None

    def status(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


def _summary(token: ApiToken) -> TokenSummary:
    return TokenSummary(
        token.id,
        token.account_id,
        token.name,
        tuple(token.scopes.split()),
        token.created_at,
        token.last_used_at,
        token.expires_at,
        token.revoked_at,
    )


def list_tokens(session: Session, account_id: int) -> list[TokenSummary]:
    """The account's tokens, oldest first, revoked and expired ones included."""
    if session.get(Account, account_id) is None:
        raise NotFound(f"account {account_id} does not exist", field="account")
    query = select(ApiToken).where(ApiToken.account_id == account_id).order_by(ApiToken.id)
    return [_summary(token) for token in session.scalars(query)]


def revoke_token(
    session: Session, token_id: int, account_id: int | None = None, who: audit.Who = OPERATOR
) -> TokenSummary:
    """Revoke the token at once (every process looks tokens up in the store on each request,
    so no cache outlives it). ``account_id`` limits it to that account's tokens."""
    query = select(ApiToken).where(ApiToken.id == token_id)
    if account_id is not None:
        query = query.where(ApiToken.account_id == account_id)
    token = session.scalars(query.with_for_update()).first()
    if token is None:
        raise NotFound(
            f"token {token_id} does not exist"
            + (" in this account" if account_id is not None else "")
            + ": 'keyhouse admin token list --account ID' shows the tokens",
            field="id",
        )
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
        audit.record(
            session,
            who,
            "token.revoke",
            "token",
            token.id,
            before=audit.token_view(token),
            account_id=token.account_id,
        )
    return _summary(token)


def add_lock(
    session: Session,
    link: VirtualLockLink,
    *,
    account_id: int,
    name: str,
    keypad: bool = False,
    type_: int = 4,
    timezone: str = DEFAULT_TIMEZONE,
    who: Actor = OPERATOR,
) -> Smartlock:
    """A new virtual lock with a fresh Nuki id; its smartlockId is derived from type and id."""
    if session.get(Account, account_id) is None:
        raise NotFound(f"account {account_id} does not exist", field="account")
    if type_ not in LOCK_TYPES:
        raise ValidationFailed(
            f"lock type {type_} is not one Keyhouse simulates: use 0, 2, 3 or 4",
            field="type",
            rule="enum",
        )
    if not is_valid_timezone(timezone):
        raise ValidationFailed(
            f"time zone {timezone!r} is not an IANA time zone such as Europe/Vienna",
            field="timezone",
            rule="format",
        )
    while True:
        new_id = smartlock_id(type_, new_nuki_id())
        if session.get(Smartlock, new_id) is None:
            break
    now = utcnow()
    lock = Smartlock(
        id=new_id,
        account_id=account_id,
        type=type_,
        nuki_id=f"{new_id & 0xFFFFFFFF:08X}",
        name=name,
        timezone=timezone,
        keypad=keypad,
        created_at=now,
        updated_at=now,
        checked_at=now,  # a new lock holds nothing: its first drift check is one interval on
    )
    session.add(lock)
    session.flush()
    link.install(session, new_id, keypad=keypad)
    audit.record(
        session,
        who,
        "lock.add",
        "lock",
        new_id,
        after=audit.lock_view(lock),
        smartlock_id=new_id,
        account_id=account_id,
    )
    return lock


@dataclass(frozen=True)
class Demo:
    account_id: int
    token: str
    lock_ids: tuple[int, ...]


def is_empty(session: Session) -> bool:
    return not session.scalar(select(func.count()).select_from(Account))


def seed_demo(db: Database, link: VirtualLockLink) -> Demo | None:
    """On an empty store: a demo account, two virtual locks (one with a keypad), a token."""
    with db.session() as session:
        if not is_empty(session):
            return None
        account = create_account(session, email="demo@example.com", name="Keyhouse Demo")
        token = create_token(session, account_id=account.id, name="demo token", who=SYSTEM)
        account_id = account.id
    with db.session() as session:
        front = add_lock(
            session, link, account_id=account_id, name="Front Door", keypad=True, who=SYSTEM
        )
        flat = add_lock(session, link, account_id=account_id, name="Flat 2", who=SYSTEM)
        return Demo(account_id, token, (front.id, flat.id))


@dataclass(frozen=True)
class AccountSummary:
    id: int
    email: str
    name: str
    locks: int
    tokens: int
    created_at: datetime


def list_accounts(session: Session) -> list[AccountSummary]:
    """Every account with how many locks and tokens it has, oldest first."""
    locks = select(func.count()).where(Smartlock.account_id == Account.id).scalar_subquery()
    tokens = select(func.count()).where(ApiToken.account_id == Account.id).scalar_subquery()
    rows = session.execute(
        select(Account.id, Account.email, Account.name, locks, tokens, Account.created_at).order_by(
            Account.id
        )
    )
    return [AccountSummary(*row) for row in rows]


def _lock(session: Session, lock_id: int) -> Smartlock:
    lock = session.get(Smartlock, lock_id)
    if lock is None:
        raise NotFound(
            f"smartlock {lock_id} does not exist in this store: 'keyhouse admin lock list' "
            "shows the locks",
            field="smartlockId",
        )
    return lock


def rename_lock(session: Session, lock_id: int, name: str, *, who: Actor = OPERATOR) -> Smartlock:
    if not name.strip() or len(name) > LOCK_NAME_MAX:
        raise ValidationFailed(
            f"a lock's name must have 1 to {LOCK_NAME_MAX} characters, not {len(name)}",
            field="name",
            rule="length",
        )
    repo.lock_smartlocks(session, [lock_id])
    lock = _lock(session, lock_id)
    clash = session.scalar(
        select(Smartlock.id).where(
            Smartlock.account_id == lock.account_id,
            Smartlock.id != lock.id,
            func.lower(Smartlock.name) == name.lower(),
        )
    )
    if clash is not None:
        raise Conflict(
            f"account {lock.account_id} already has a lock called {name!r} (smartlockId "
            f"{clash}): choose another name",
            field="name",
            rule="unique",
        )
    if lock.name != name:
        audit.record(
            session,
            who,
            "lock.rename",
            "lock",
            lock.id,
            before={"name": lock.name},
            after={"name": name},
            smartlock_id=lock.id,
            account_id=lock.account_id,
        )
    lock.name = name
    lock.updated_at = utcnow()
    return lock


def remove_lock(
    session: Session, lock_id: int, *, with_keys: bool = False, who: Actor = OPERATOR
) -> int:
    """Remove a lock, its virtual device, its keys and its log; returns how many keys went.

    A lock that still has keys is refused unless ``with_keys``: its guests' links stop working.
    """
    repo.lock_smartlocks(session, [lock_id])
    lock = _lock(session, lock_id)
    keys = session.scalar(
        select(func.count()).where(
            SmartlockAuth.smartlock_id == lock_id, SmartlockAuth.deleting.is_(False)
        )
    )
    if keys and not with_keys:
        raise Conflict(
            f"smartlock {lock_id} ({lock.name!r}) still has {keys} key(s): delete them first, "
            "or remove the lock with its keys (--with-keys; their guest links stop working)",
            field="smartlockId",
            rule="has_keys",
        )
    # The live keys go with the lock: each is an event, as when a user is deleted.
    for key in session.scalars(
        select(SmartlockAuth).where(
            SmartlockAuth.smartlock_id == lock_id, SmartlockAuth.deleting.is_(False)
        )
    ):
        audit.record_key_deleted(session, who, key, account_id=lock.account_id)
    audit.record(
        session,
        who,
        "lock.remove",
        "lock",
        lock.id,
        before=audit.lock_view(lock),
        smartlock_id=lock.id,
        account_id=lock.account_id,
    )
    session.execute(delete(SimulatedAuth).where(SimulatedAuth.smartlock_id == lock_id))
    session.execute(delete(SimulatedLock).where(SimulatedLock.smartlock_id == lock_id))
    session.delete(lock)  # keys and log entries go with it (ON DELETE CASCADE)
    session.flush()
    return keys or 0
