"""The stand-in's Nuki mode (KEYHOUSE_NUKI_MODE=1): its switches, per account, and the checks
the Nuki-mode edge asks for. Keyhouse's normal mode never calls these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from keyhouse.rules.dates import utcnow
from keyhouse.store import leases, repo
from keyhouse.store import upstream as store
from keyhouse.store.models import NukiEmulation


@dataclass(frozen=True)
class Switches:
    too_many_requests: int
    keys_appear_after_seconds: float
    hide_keys_since: datetime | None
    fail_next: int = 0
    fail_status: int = 503


def switches(session: Session, account_id: int, default_delay: float) -> Switches:
    row = store.emulation(session, account_id)
    if row is None:
        return Switches(0, default_delay, None)
    delay = row.keys_appear_seconds
    return Switches(
        row.too_many_requests,
        default_delay if delay is None else delay,
        row.hide_keys_since,
        row.fail_next,
        row.fail_status,
    )


def configure(
    session: Session, account_id: int, changes: dict[str, Any], default_delay: float
) -> Switches:
    row = store.emulation(session, account_id)
    if row is None:
        row = NukiEmulation(account_id=account_id, too_many_requests=0)
        session.add(row)
    if changes.get("too_many_requests") is not None:
        row.too_many_requests = changes["too_many_requests"]
    if changes.get("fail_next") is not None:
        row.fail_next = changes["fail_next"]
    if changes.get("fail_status") is not None:
        row.fail_status = changes["fail_status"]
    if "keys_appear_after_seconds" in changes:
        row.keys_appear_seconds = changes["keys_appear_after_seconds"]
    if changes.get("hide_new_keys") is not None:
        if not changes["hide_new_keys"]:
            row.hide_keys_since = None
        elif row.hide_keys_since is None:
            row.hide_keys_since = utcnow()
    session.flush()
    return switches(session, account_id, default_delay)


def throttled(session: Session, account_id: int) -> bool:
    """Whether this request is one of the "429 next" ones (spends it)."""
    return store.take_too_many_requests(session, account_id)


def failing(session: Session, account_id: int) -> int | None:
    """The status this request answers if it is one of the "fail next" ones (spends it)."""
    return store.take_failure(session, account_id)


def operation_running(session: Session, smartlock_id: int) -> bool:
    """An operation runs on the lock: a reconciler holds its lease (mid device call)."""
    held = leases.holder(session, smartlock_id)
    return held is not None and held[2]


def hidden_since(switch: Switches, now: datetime | None = None) -> tuple[datetime, datetime | None]:
    """Keys created after the first instant, or at/after the second, are not listed yet."""
    return (now or utcnow()) - timedelta(seconds=switch.keys_appear_after_seconds), (
        switch.hide_keys_since
    )


def account_of_token(session: Session, token_hash: str) -> int | None:
    row = repo.token_row_by_hash(session, token_hash)
    return None if row is None else row.account_id
