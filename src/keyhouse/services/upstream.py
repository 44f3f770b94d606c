"""Linking a Keyhouse account to a Nuki Web account (the operator's task, never the API's).

``link`` checks the token with the upstream's ``GET /smartlock`` (no transaction is held while
the upstream answers), then in one transaction imports the locks with their own smartlockIds,
refreshes those imported before, marks the ones the upstream no longer lists, and stores the
token encrypted. A smartlockId is one lock across Keyhouse: one held by another account (or a
virtual lock of this one) refuses the whole link, with a sentence that names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import httpx
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from keyhouse.devices.nuki_api import NukiApi, UpstreamError
from keyhouse.errors import Conflict, KeyhouseError, NotFound, ValidationFailed
from keyhouse.rules.dates import utcnow
from keyhouse.rules.upstream import UpstreamLockInfo, parse_locks, plan_import
from keyhouse.services import audit
from keyhouse.services.audit import OPERATOR
from keyhouse.store import upstream as store
from keyhouse.store.database import Database
from keyhouse.store.models import Account, Smartlock, UpstreamLink
from keyhouse.store.secret_box import SecretBox

LINK_KIND = "nuki"
URL_MAX = 500


class UpstreamFailed(KeyhouseError):
    status = 502
    code = "upstream_failed"


@dataclass(frozen=True)
class LinkResult:
    imported: int  # locks the upstream lists, now in the account
    added: int
    refreshed: int
    removed: int  # imported before, no longer listed upstream (marked, kept)


@dataclass(frozen=True)
class LinkStatus:
    account_id: int
    url: str
    linked_at: datetime
    last_contact_at: datetime | None
    last_error: str | None
    calls: int
    locks: int
    removed: int


def check_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("https://", "http://")) or len(url) > URL_MAX or " " in url:
        raise ValidationFailed(
            f"--url {url[:80]!r} is not an http(s) URL: write e.g. https://api.nuki.io",
            field="url",
            rule="format",
        )
    return url


def check_token(token: str) -> str:
    token = token.strip()
    if not token or len(token) > 1000 or any(c.isspace() or not c.isprintable() for c in token):
        raise ValidationFailed(
            "--token is empty or holds spaces or control characters: paste the API token from "
            "Nuki Web (Menu → API → API token)",
            field="token",
            rule="format",
        )
    return token


def link(
    db: Database,
    box: SecretBox,
    *,
    account_id: int,
    token: str,
    url: str,
    timeout_seconds: float = 10.0,
    transport: httpx.BaseTransport | None = None,
) -> LinkResult:
    url, token = check_url(url), check_token(token)
    with db.read() as session:
        if session.get(Account, account_id) is None:
            raise NotFound(f"account {account_id} does not exist", field="account")
    cloud = NukiApi(url, token, timeout_seconds=timeout_seconds, transport=transport)
    try:
        try:
            payload = cloud.smartlocks()
            found = parse_locks(payload)
        except (UpstreamError, ValueError) as exc:
            message = exc.message if isinstance(exc, UpstreamError) else str(exc)
            db.transaction(
                lambda s: store.count_calls(s, account_id, cloud.calls, utcnow(), message),
                what="recording the upstream's failure",
            )
            raise UpstreamFailed(f"nothing imported: {message}") from None
    finally:
        cloud.close()
    sealed = box.seal(token)
    for attempt in range(2):
        try:
            return db.transaction(
                lambda s: _import(s, account_id, url, sealed, found, cloud.calls),
                what=f"linking account {account_id}",
            )
        except IntegrityError:
            # Another link inserted one of these locks meanwhile: the second run sees it and
            # refuses with its sentence (or refreshes, if it was this account's).
            if attempt:
                raise
    raise AssertionError("unreachable")


def _import(
    session: Session,
    account_id: int,
    url: str,
    sealed: str,
    found: list[UpstreamLockInfo],
    calls: int,
) -> LinkResult:
    if store.hold_account(session, account_id) is None:
        raise NotFound(f"account {account_id} does not exist", field="account")
    by_id = {lock.smartlock_id: lock for lock in found}
    before = {row.smartlock_id: row for row in store.imported(session, account_id)}
    plan = plan_import(account_id, by_id, store.holders(session, by_id), before)
    if plan.conflicts:
        lock_id, other = next(iter(plan.conflicts.items()))
        where = (
            f"account {other}" if other != account_id else f"account {account_id} as a virtual lock"
        )
        more = f" (and {len(plan.conflicts) - 1} more)" if len(plan.conflicts) > 1 else ""
        raise Conflict(
            f"smartlock {lock_id} ({by_id[lock_id].name!r}) is already in Keyhouse, in "
            f"{where}{more}: a smartlockId is one lock across Keyhouse, so nothing was "
            "imported; remove it there first",
            field="smartlockId",
            rule="unique",
        )
    now = utcnow()
    for lock_id in plan.added:
        info = by_id[lock_id]
        lock = Smartlock(
            id=lock_id,
            account_id=account_id,
            type=info.type,
            nuki_id=info.nuki_id,
            name=info.name,
            timezone=info.timezone,
            keypad=info.keypad,
            virtual=False,
            link=LINK_KIND,
            created_at=now,
            updated_at=now,
            checked_at=now,
        )
        session.add(lock)
        session.flush()
        session.add(store.new_upstream_row(account_id, info, now))
        audit.record(
            session,
            OPERATOR,
            "lock.import",
            "lock",
            lock_id,
            after=audit.lock_view(lock),
            smartlock_id=lock_id,
            account_id=account_id,
        )
    for lock_id in plan.refreshed:
        info = by_id[lock_id]
        lock = session.get(Smartlock, lock_id)
        assert lock is not None
        store.refresh_lock(session, account_id, lock, before.get(lock_id), info, now)
    for lock_id in plan.removed:
        row = before[lock_id]
        if row.removed_at is None:
            row.removed_at = now
    link_row = store.link_of(session, account_id)
    if link_row is None:
        link_row = UpstreamLink(account_id=account_id, created_at=now, calls=0)
        session.add(link_row)
    link_row.url, link_row.token_secret = url, sealed
    link_row.updated_at = link_row.last_contact_at = now
    link_row.last_error = None
    link_row.calls = (link_row.calls or 0) + calls
    audit.record(
        session,
        OPERATOR,
        "upstream.link",
        "account",
        account_id,
        after={"url": url, "locks": len(found)},  # never the token
        account_id=account_id,
    )
    return LinkResult(
        imported=len(found),
        added=len(plan.added),
        refreshed=len(plan.refreshed),
        removed=len(plan.removed),
    )


def unlink(session: Session, account_id: int) -> int:
    """End the account's link (its token is deleted); returns how many imported locks stay
    (kept, with their keys, which wait until the account is linked again)."""
    row = store.link_of(session, account_id)
    if row is None:
        raise NotFound(
            f"account {account_id} is not linked to a Nuki Web account: nothing to unlink",
            field="account",
        )
    url = row.url
    session.delete(row)
    audit.record(
        session,
        OPERATOR,
        "upstream.unlink",
        "account",
        account_id,
        before={"url": url},
        account_id=account_id,
    )
    return len(store.imported(session, account_id))


def status(session: Session) -> list[LinkStatus]:
    counts = store.lock_counts(session)
    return [
        LinkStatus(
            account_id=row.account_id,
            url=row.url,
            linked_at=row.created_at,
            last_contact_at=row.last_contact_at,
            last_error=row.last_error,
            calls=row.calls,
            locks=counts.get(row.account_id, (0, 0))[0],
            removed=counts.get(row.account_id, (0, 0))[1],
        )
        for row in store.links(session)
    ]
