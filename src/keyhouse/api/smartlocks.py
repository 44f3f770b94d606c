"""GET /smartlock, GET /smartlock/{smartlockId}."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from keyhouse.api.edge import INT32, LOCK_ID
from keyhouse.api.paging import (
    PAGED_HEADERS_DOC,
    after_query,
    checked_cursor,
    checked_limit,
    limit_query,
    list_cap,
    page_response,
)
from keyhouse.api.responses import json_response
from keyhouse.api.security import runtime_of, scoped
from keyhouse.schemas.smartlock import Smartlock
from keyhouse.services import smartlocks
from keyhouse.services.caller import Caller

router = APIRouter(tags=["Smartlock"])
read_scope = scoped("smartlock", "smartlock.readOnly")


@router.get(
    "/smartlock",
    summary="Get a list of smartlocks",
    operation_id="SmartlocksResource_get_get",
    responses={200: {"model": list[Smartlock], "headers": PAGED_HEADERS_DOC}},
)
def list_smartlocks(
    request: Request,
    authId: int | None = Query(None, description="Filter for authId", **INT32),
    type: int | None = Query(None, description="Filter for type", **INT32),
    limit: int | None = limit_query(),
    after: str | None = after_query(),
    caller: Caller = Depends(read_scope),
) -> Response:
    """Scopes: smartlock or smartlock.readOnly. By id; paged by Keyhouse's limit and after."""
    page_size = checked_limit(limit, list_cap(request))
    start = checked_cursor(after, "lock")
    with runtime_of(request).db.read() as session:
        found, cursor = smartlocks.list_smartlocks(
            session, caller, auth_id=authId, type_=type, after=start, limit=page_size
        )
    return page_response(request, found, cursor, page_size)


@router.get(
    "/smartlock/{smartlockId}",
    summary="Get a smartlock",
    operation_id="SmartlockResource_get_get",
    responses={200: {"model": Smartlock}},
)
def get_smartlock(
    request: Request,
    smartlockId: int = Path(description="The smartlock id", **LOCK_ID),
    caller: Caller = Depends(read_scope),
) -> Response:
    """Scopes: smartlock or smartlock.readOnly."""
    with runtime_of(request).db.read() as session:
        found = smartlocks.get_smartlock(session, caller, smartlockId)
    return json_response(found)
