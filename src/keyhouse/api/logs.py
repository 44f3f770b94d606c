"""GET /smartlock/{id}/log and GET /smartlock/log: the activity log, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from keyhouse.api.edge import INT32, INT32_MAX, LOCK_ID
from keyhouse.api.paging import PAGED_HEADERS_DOC, page_response
from keyhouse.api.security import runtime_of, scoped
from keyhouse.errors import ValidationFailed
from keyhouse.rules.dates import parse_api_datetime
from keyhouse.rules.violations import RuleViolation
from keyhouse.schemas.log import SmartlockLog
from keyhouse.services import logs
from keyhouse.services.caller import Caller

router = APIRouter(tags=["SmartlockLog"])
log_scope = scoped("smartlock.log")
LIMIT_DOC = (
    f"How many entries, newest first: default {logs.LOG_LIMIT_DEFAULT}, max {logs.LOG_LIMIT_MAX}"
)


def _date(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_api_datetime(value, field)
    except RuleViolation as violation:
        raise ValidationFailed(violation.message, field=field, rule=violation.rule) from None


@dataclass(frozen=True)
class LogQuery:
    """The filters both log endpoints take (official names)."""

    account_user_id: int | None
    from_date: datetime | None
    to_date: datetime | None
    action: int | None
    older_than: str | None
    limit: int


def log_query(
    accountUserId: int | None = Query(None, description="Filter for the account user", **INT32),
    fromDate: str | None = Query(
        None, description="From this instant (RFC 3339)", json_schema_extra={"format": "date-time"}
    ),
    toDate: str | None = Query(
        None, description="Until this instant (RFC 3339)", json_schema_extra={"format": "date-time"}
    ),
    action: int | None = Query(None, description="Filter for the action", **INT32),
    id: str | None = Query(None, description="Only entries older than this log entry id"),
    limit: int = Query(logs.LOG_LIMIT_DEFAULT, description=LIMIT_DOC, ge=1, le=INT32_MAX),
) -> LogQuery:
    return LogQuery(
        accountUserId, _date(fromDate, "fromDate"), _date(toDate, "toDate"), action, id, limit
    )


def _answer(request: Request, caller: Caller, query: LogQuery, **where: object) -> Response:
    with runtime_of(request).db.read() as session:
        found, older = logs.list_logs(
            session,
            caller,
            account_user_id=query.account_user_id,
            from_date=query.from_date,
            to_date=query.to_date,
            action=query.action,
            older_than=query.older_than,
            limit=query.limit,
            **where,  # type: ignore[arg-type]
        )
    # The official paging (id of the oldest entry seen, and limit) as a Link to the next page.
    return page_response(request, found, older, len(found), param="id")


@router.get(
    "/smartlock/{smartlockId}/log",
    summary="Get a list of smartlock logs",
    operation_id="SmartlockLogsResource_get_get",
    responses={200: {"model": list[SmartlockLog], "headers": PAGED_HEADERS_DOC}},
)
def lock_log(
    request: Request,
    smartlockId: int = Path(description="The smartlock id", **LOCK_ID),
    authId: str | None = Query(None, description="Filter for the key's id"),
    query: LogQuery = Depends(log_query),
    caller: Caller = Depends(log_scope),
) -> Response:
    """Scope: smartlock.log."""
    return _answer(request, caller, query, smartlock_id=smartlockId, auth_key=authId)


@router.get(
    "/smartlock/log",
    summary="Get a list of smartlock logs for all of your smartlocks",
    operation_id="SmartlocksLogsResource_get_get",
    responses={200: {"model": list[SmartlockLog], "headers": PAGED_HEADERS_DOC}},
)
def account_log(
    request: Request,
    query: LogQuery = Depends(log_query),
    caller: Caller = Depends(log_scope),
) -> Response:
    """Scope: smartlock.log."""
    return _answer(request, caller, query)
