"""The audit log's rows (:class:`~keyhouse.store.models.AuditEvent`): written in the
transaction of the change they record, read newest first, pruned after the retention time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from keyhouse.rules.dates import utcnow
from keyhouse.store.models import AuditEvent

# Rows deleted per transaction when old events are pruned: a short hold of the write lock.
PRUNE_BATCH = 1000


@dataclass(frozen=True)
class Actor:
    """Who made a change: ``kind`` is "token" (with the token's id and name), "operator" (the
    CLI on the server), "guest" (a guest page) or "system" (the server itself)."""

    kind: str
    token_id: int | None = None
    token_name: str | None = None
    source: str | None = None


OPERATOR = Actor("operator", source="cli")
SYSTEM = Actor("system")


def add(
    session: Session,
    *,
    account_id: int,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: str | None,
    smartlock_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add one event to ``session`` (so it commits, or rolls back, with the change)."""
    event = AuditEvent(
        account_id=account_id,
        at=utcnow(),
        actor=actor.kind,
        token_id=actor.token_id,
        token_name=actor.token_name,
        action=action,
        target_type=target_type,
        target_id=target_id,
        smartlock_id=smartlock_id,
        before=before,
        after=after,
        source=actor.source,
    )
    session.add(event)
    return event


@dataclass(frozen=True)
class AuditFilter:
    """What ``page`` keeps: ``action`` exactly, or ``action_family`` ("key" keeps "key.…")."""

    action: str | None = None
    action_family: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    smartlock_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None


def page(
    session: Session,
    account_id: int,
    where: AuditFilter,
    *,
    before_id: int | None,
    limit: int,
) -> Sequence[AuditEvent]:
    """At most ``limit`` of the account's events, newest first, older than ``before_id``."""
    query = select(AuditEvent).where(AuditEvent.account_id == account_id)
    if where.action is not None:
        query = query.where(AuditEvent.action == where.action)
    if where.action_family is not None:
        query = query.where(
            AuditEvent.action.startswith(f"{where.action_family}.", autoescape=True)
        )
    if where.target_type is not None:
        query = query.where(AuditEvent.target_type == where.target_type)
    if where.target_id is not None:
        query = query.where(AuditEvent.target_id == where.target_id)
    if where.smartlock_id is not None:
        query = query.where(AuditEvent.smartlock_id == where.smartlock_id)
    if where.since is not None:
        query = query.where(AuditEvent.at >= where.since)
    if where.until is not None:
        query = query.where(AuditEvent.at <= where.until)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    return session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit)).all()


def prune(session: Session, older_than: datetime, batch: int = PRUNE_BATCH) -> int:
    """Delete at most ``batch`` events from before ``older_than``; how many went."""
    ids = list(
        session.scalars(select(AuditEvent.id).where(AuditEvent.at < older_than).limit(batch))
    )
    if not ids:
        return 0
    session.execute(delete(AuditEvent).where(AuditEvent.id.in_(ids)))
    return len(ids)
