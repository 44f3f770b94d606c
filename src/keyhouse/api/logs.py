"""GET /smartlock/{id}/log and GET /smartlock/log: the activity log, newest first."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from keyhouse.api.responses import json_response
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


def _date(value: str | None, field: str):  # type: ignore[no-untyped-def]
    if value is None:
        return None
    try:
        return parse_api_datetime(value, field)
    except RuleViolation as violation:
        raise ValidationFailed(violation.message, field=field, rule=violation.rule) from None


@router.get(
    "/smartlock/{smartlockId}/log",
    summary="Get a list of smartlock logs",
    operation_id="SmartlockLogsResource_get_get",
    responses={200: {"model": list[SmartlockLog]}},
)
def lock_log(
    request: Request,
    smartlockId: int = Path(description="The smartlock id"),
    authId: str | None = Query(None, description="Filter for the key's id"),
    accountUserId: int | None = Query(None, description="Filter for the account user"),
    fromDate: str | None = Query(None, description="From this instant (RFC 3339)"),
    toDate: str | None = Query(None, description="Until this instant (RFC 3339)"),
    action: int | None = Query(None, description="Filter for the action"),
    id: str | None = Query(None, description="Only entries older than this log entry id"),
    limit: int = Query(logs.LOG_LIMIT_DEFAULT, description=LIMIT_DOC),
    caller: Caller = Depends(log_scope),
) -> Response:
    """Scope: smartlock.log."""
    with runtime_of(request).db.session() as session:
        found = logs.list_logs(
            session,
            caller,
            smartlock_id=smartlockId,
            auth_key=authId,
            account_user_id=accountUserId,
            from_date=_date(fromDate, "fromDate"),
            to_date=_date(toDate, "toDate"),
            action=action,
            older_than=id,
            limit=limit,
        )
    return json_response(found)


@router.get(
    "/smartlock/log",
    summary="Get a list of smartlock logs for all of your smartlocks",
    operation_id="SmartlocksLogsResource_get_get",
    responses={200: {"model": list[SmartlockLog]}},
)
def account_log(
    request: Request,
    accountUserId: int | None = Query(None, description="Filter for the account user"),
    fromDate: str | None = Query(None, description="From this instant (RFC 3339)"),
    toDate: str | None = Query(None, description="Until this instant (RFC 3339)"),
    action: int | None = Query(None, description="Filter for the action"),
    id: str | None = Query(None, description="Only entries older than this log entry id"),
    limit: int = Query(logs.LOG_LIMIT_DEFAULT, description=LIMIT_DOC),
    caller: Caller = Depends(log_scope),
) -> Response:
    """Scope: smartlock.log."""
    with runtime_of(request).db.session() as session:
        found = logs.list_logs(
            session,
            caller,
            account_user_id=accountUserId,
            from_date=_date(fromDate, "fromDate"),
            to_date=_date(toDate, "toDate"),
            action=action,
            older_than=id,
            limit=limit,
        )
    return json_response(found)
