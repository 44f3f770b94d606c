"""GET /smartlock, GET /smartlock/{smartlockId}."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

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
from keyhouse.api.security import caller_in, runtime_of, scoped
from keyhouse.runtime import Runtime
from keyhouse.schemas.smartlock import Smartlock
from keyhouse.services import smartlocks
from keyhouse.services.caller import Caller
from keyhouse.services.present import Shape

router = APIRouter(tags=["Smartlock"])
READ_SCOPES = ("smartlock", "smartlock.readOnly")
read_scope = scoped(*READ_SCOPES)


@router.get(
    "/smartlock",
    summary="Get a list of smartlocks",
    operation_id="SmartlocksResource_get_get",
    responses={200: {"model": list[Smartlock], "headers": PAGED_HEADERS_DOC}},
)
async def list_smartlocks(
    request: Request,
    authId: int | None = Query(None, description="Filter for authId", **INT32),
    type: int | None = Query(None, description="Filter for type", **INT32),
    limit: int | None = limit_query(),
    after: str | None = after_query(),
) -> Response:
    """Scopes: smartlock or smartlock.readOnly. By id; paged by Keyhouse's limit and after."""
    return await locks_answer(request, authId, type, limit, after)


async def locks_answer(
    request: Request,
    auth_id: int | None,
    type_: int | None,
    limit: int | None,
    after: str | None,
) -> Response:
    """The answer of ``GET /smartlock`` (also run by ``api.fast_path``): the token and the
    listing in one trip to the thread pool and one session."""
    runtime = runtime_of(request)
    found, cursor, page_size = await run_in_threadpool(
        _locks_page, runtime, request, auth_id, type_, limit, after
    )
    return page_response(request, found, cursor, page_size)


def _locks_page(
    runtime: Runtime,
    request: Request,
    auth_id: int | None,
    type_: int | None,
    limit: int | None,
    after: str | None,
) -> tuple[list[Shape], str | None, int]:
    with runtime.db.read() as session:
        caller = caller_in(session, request, READ_SCOPES)
        page_size = checked_limit(limit, list_cap(request))
        start = checked_cursor(after, "lock")
        found, cursor = smartlocks.list_smartlocks(
            session, caller, auth_id=auth_id, type_=type_, after=start, limit=page_size
        )
        return found, cursor, page_size


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
