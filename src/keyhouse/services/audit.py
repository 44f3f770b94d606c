"""The audit log: who changed which key, user, token or lock, when, what, and from where.

``record`` is called in the transaction of the change it records, so an event exists exactly
when its change was committed. ``before``/``after`` are the official JSON shapes of the thing
(or, for an update, only the fields that changed) with secrets left out: a keypad code is shown
as "(set)" (or "(changed)" in an update), and tokens, token hashes and guest-link secrets are
never in them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from keyhouse.errors import ValidationFailed, echo
from keyhouse.rules.dates import format_api_datetime, parse_day_or_datetime
from keyhouse.rules.violations import RuleViolation
from keyhouse.schemas.account_user import AccountUser as AccountUserShape
from keyhouse.schemas.audit import AuditEvent as AuditEventShape
from keyhouse.schemas.auth import SmartlockAuth as SmartlockAuthShape
from keyhouse.schemas.smartlock import Smartlock as SmartlockShape
from keyhouse.schemas.smartlock import SmartlockConfig
from keyhouse.services.caller import Caller
from keyhouse.services.present import Shape, shape_dict
from keyhouse.store import audit as store
from keyhouse.store.audit import OPERATOR, SYSTEM, Actor, AuditFilter
from keyhouse.store.models import AccountUser, ApiToken, AuditEvent, Smartlock, SmartlockAuth

__all__ = ["OPERATOR", "SYSTEM", "Actor", "record"]

Who = Caller | Actor

CODE_SET = "(set)"
CODE_CHANGED = "(changed)"
# Names that never go into an event, whatever a caller passes (defence in depth).
SECRET_NAMES = frozenset(
    {"token", "tokenHash", "linkSecret", "linkHash", "secret", "deviceHash", "deviceSecret"}
)
TARGET_TYPES = ("key", "user", "lock", "token")
AUDIT_LIMIT_DEFAULT = 100
AUDIT_LIMIT_MAX = 1000
_ACTION = re.compile(r"[a-z]{1,32}(\.[a-z]{1,32})?", re.ASCII)


def actor_of(who: Who) -> Actor:
    if isinstance(who, Actor):
        return who
    return Actor("token", who.token_id, who.token_name or None, who.source)


def _scrub(shape: Shape | None) -> Shape | None:
    """The shape without secrets: a keypad code only as "(set)"/"(changed)"."""
    if shape is None:
        return None
    clean: Shape = {}
    for name, value in shape.items():
        if name in SECRET_NAMES:
            continue
        if name == "code" and value is not None and value not in (CODE_SET, CODE_CHANGED):
            value = CODE_SET
        clean[name] = _scrub(value) if isinstance(value, dict) else value
    return clean


def record(
    session: Session,
    who: Who,
    action: str,
    target_type: str,
    target_id: object,
    *,
    before: Shape | None = None,
    after: Shape | None = None,
    smartlock_id: int | None = None,
    account_id: int | None = None,
) -> None:
    """Record one change in ``session`` (the change's own transaction). ``account_id`` defaults
    to the caller's; an operator or system actor names it."""
    if account_id is None:
        if not isinstance(who, Caller):
            raise ValueError("an operator or system event needs the account_id it concerns")
        account_id = who.account_id
    store.add(
        session,
        account_id=account_id,
        actor=actor_of(who),
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        smartlock_id=smartlock_id,
        before=_scrub(before),
        after=_scrub(after),
    )


def changes(before: Shape, after: Shape) -> tuple[Shape, Shape]:
    """Only the fields that differ, each side; a changed keypad code as "(changed)"."""
    names = [name for name in {**before, **after} if before.get(name) != after.get(name)]
    old = {name: before.get(name) for name in names}
    new = {name: after.get(name) for name in names}
    if "code" in names:
        old["code"] = CODE_CHANGED if old["code"] is not None else None
        new["code"] = CODE_CHANGED if new["code"] is not None else None
    return old, new


# --- what a thing looks like in an event (official shapes, stable fields only) ---------------


def key_view(row: SmartlockAuth) -> Shape:
    """A key as the owner set it (official SmartlockAuth names); the code raw: ``record`` and
    ``changes`` hide it."""
    return shape_dict(
        SmartlockAuthShape,
        id=row.id,
        smartlock_id=row.smartlock_id,
        account_user_id=row.account_user_id,
        type=row.type,
        name=row.name,
        enabled=row.enabled,
        remote_allowed=row.remote_allowed,
        smart_actions_enabled=row.smart_actions_enabled,
        code=row.code,
        allowed_from_date=row.allowed_from_date,
        allowed_until_date=row.allowed_until_date,
        allowed_week_days=row.allowed_week_days,
        allowed_from_time=row.allowed_from_time,
        allowed_until_time=row.allowed_until_time,
    )


def user_view(row: AccountUser) -> Shape:
    return shape_dict(
        AccountUserShape,
        account_user_id=row.id,
        type=row.type,
        email=row.email,
        name=row.name,
        language=row.language,
    )


def lock_view(row: Smartlock) -> Shape:
    return shape_dict(
        SmartlockShape,
        smartlock_id=row.id,
        type=row.type,
        name=row.name,
        config=shape_dict(
            SmartlockConfig, name=row.name, keypad_paired=row.keypad, timezone=row.timezone
        ),
    )


def token_view(row: ApiToken) -> Shape:
    """A token by its id, name, scopes and expiry: never the token or its hash."""
    shape: Shape = {"id": row.id, "name": row.name, "scopes": row.scopes.split()}
    expires = getattr(row, "expires_at", None)
    if expires is not None:
        shape["expiryDate"] = format_api_datetime(expires)
    return shape


def record_key_deleted(session: Session, who: Who, row: SmartlockAuth, **extra: Any) -> None:
    record(
        session,
        who,
        "key.delete",
        "key",
        row.id,
        before=key_view(row),
        smartlock_id=row.smartlock_id,
        **extra,
    )


# --- reading the log ------------------------------------------------------------------------


def _date(value: str | None, field: str, *, end_of_day: bool = False) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_day_or_datetime(value, field, end_of_day=end_of_day)
    except RuleViolation as violation:
        raise ValidationFailed(violation.message, field=field, rule=violation.rule) from None


def audit_filter(
    *,
    action: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    smartlock_id: int | None = None,
    since: str | None = None,
    until: str | None = None,
) -> AuditFilter:
    """The filters of a request, checked: a bad one is a 400 naming its parameter."""
    family = None
    if action is not None:
        if not _ACTION.fullmatch(action):
            raise ValidationFailed(
                f"action {echo(action)} is not an audit action: give one such as key.update, "
                "or a family such as key (every key.… action)",
                field="action",
                rule="format",
            )
        if "." not in action:
            family, action = action, None
    if target_type is not None and target_type not in TARGET_TYPES:
        raise ValidationFailed(
            f"targetType {echo(target_type)} is not one of {', '.join(TARGET_TYPES)}",
            field="targetType",
            rule="enum",
        )
    start = _date(since, "since")
    end = _date(until, "until", end_of_day=True)
    if start is not None and end is not None and start > end:
        raise ValidationFailed(
            f"since ({since}) is after until ({until}): nothing can be in between",
            field="since",
            rule="order",
        )
    return AuditFilter(
        action=action,
        action_family=family,
        target_type=target_type,
        target_id=target_id,
        smartlock_id=smartlock_id,
        since=start,
        until=end,
    )


def event_shape(row: AuditEvent) -> Shape:
    shape = shape_dict(
        AuditEventShape,
        id=row.id,
        date=row.at,
        actor=row.actor,
        token_id=row.token_id,
        token_name=row.token_name,
        action=row.action,
        target_type=row.target_type,
        target_id=row.target_id,
        smartlock_id=row.smartlock_id,
        source=row.source,
    )
    # before/after stay in the answer when empty (null): "nothing before" is information.
    shape["before"] = row.before
    shape["after"] = row.after
    return shape


@dataclass(frozen=True)
class AuditPage:
    events: list[Shape]
    # The id to pass as ``before`` for the next (older) page, None when this was the last.
    next_before: int | None


def list_events(
    session: Session,
    caller: Caller,
    where: AuditFilter,
    *,
    before: int | None = None,
    limit: int = AUDIT_LIMIT_DEFAULT,
) -> AuditPage:
    """The account's events, newest first: one page, and where the next begins."""
    if not 1 <= limit <= AUDIT_LIMIT_MAX:
        raise ValidationFailed(
            f"limit {limit} is out of range: use 1 to {AUDIT_LIMIT_MAX}",
            field="limit",
            rule="range",
        )
    rows = store.page(session, caller.account_id, where, before_id=before, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage([event_shape(row) for row in rows], rows[-1].id if more else None)
