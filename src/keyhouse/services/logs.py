"""The activity log: newest first, filtered, paged with the id of the oldest entry seen."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from keyhouse.errors import ValidationFailed
from keyhouse.rules.paging import split_page
from keyhouse.services.caller import Caller
from keyhouse.services.lookup import lock_not_found
from keyhouse.services.present import Shape, log_shape
from keyhouse.store import repo
from keyhouse.store.models import SmartlockLog

LOG_LIMIT_DEFAULT = 20
LOG_LIMIT_MAX = 50


def list_logs(
    session: Session,
    caller: Caller,
    *,
    smartlock_id: int | None = None,
    auth_key: str | None = None,
    account_user_id: int | None = None,
    from_date: datetime | None = None,
    to_date: datetime | None = None,
    action: int | None = None,
    older_than: str | None = None,
    limit: int = LOG_LIMIT_DEFAULT,
) -> tuple[list[Shape], str | None]:
    """Up to ``limit`` entries (at most LOG_LIMIT_MAX), newest first, older than the entry
    ``older_than``; and the id to pass as ``id`` for the next page (None: there is none)."""
    if limit < 1:
        raise ValidationFailed(
            f"limit {limit} is below 1: use 1 to {LOG_LIMIT_MAX}", field="limit", rule="minimum"
        )
    limit = min(limit, LOG_LIMIT_MAX)
    query = select(SmartlockLog).where(SmartlockLog.account_id == caller.account_id)
    if smartlock_id is not None:
        if repo.lock(session, caller.account_id, smartlock_id) is None:
            raise lock_not_found(smartlock_id, status=404)
        query = query.where(SmartlockLog.smartlock_id == smartlock_id)
    if auth_key is not None:
        query = query.where(SmartlockLog.auth_key == auth_key)
    if account_user_id is not None:
        query = query.where(SmartlockLog.account_user_id == account_user_id)
    if from_date is not None:
        query = query.where(SmartlockLog.date >= from_date)
    if to_date is not None:
        query = query.where(SmartlockLog.date <= to_date)
    if action is not None:
        query = query.where(SmartlockLog.action == action)
    if older_than is not None:
        cursor = session.scalar(
            select(SmartlockLog.seq).where(
                SmartlockLog.account_id == caller.account_id, SmartlockLog.id == older_than
            )
        )
        if cursor is None:
            raise ValidationFailed(
                f"id {older_than!r} is not a log entry of yours: pass the id of the oldest "
                "entry you received to get older ones",
                field="id",
                rule="not_found",
            )
        query = query.where(SmartlockLog.seq < cursor)
    rows = session.scalars(query.order_by(SmartlockLog.seq.desc()).limit(limit + 1)).all()
    page, more = split_page(rows, limit)
    return [log_shape(row) for row in page], page[-1].id if more else None
