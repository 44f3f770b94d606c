"""/keyhouse/…: invites and the delivery of their e-mail (Keyhouse's own, beside the Nuki paths)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from keyhouse.api.edge import LOCK_ID
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
from keyhouse.runtime import MAIL_QUEUE
from keyhouse.schemas.invite import InviteStatus
from keyhouse.services import invites
from keyhouse.services.caller import Caller

router = APIRouter(prefix="/keyhouse", tags=["Invites (Keyhouse)"])
auth_scope = scoped("smartlock.auth")


@router.get(
    "/invites",
    summary="Invites and the delivery of their e-mail, newest first",
    responses={200: {"model": list[InviteStatus], "headers": PAGED_HEADERS_DOC}},
    description="Scope: smartlock.auth. status: queued (not sent yet, retried with backoff), "
    "sent, or failed (lastError has the mail server's reply). Paged by limit and after.",
)
def list_invites(
    request: Request,
    authId: str | None = Query(None, description="Only the invites of this key (its id)"),
    status: str | None = Query(None, description="queued, sent or failed"),
    limit: int | None = limit_query(),
    after: str | None = after_query(),
    caller: Caller = Depends(auth_scope),
) -> Response:
    page_size = checked_limit(limit, list_cap(request))
    start = checked_cursor(after, "invite")
    with runtime_of(request).db.read() as session:
        found, cursor = invites.invite_statuses(
            session,
            caller,
            auth_key=authId,
            status=status,
            before=start[0] if start else None,
            limit=page_size,
        )
    return page_response(request, found, cursor, page_size)


@router.post(
    "/smartlock/{smartlockId}/auth/{id}/invite",
    summary="Send the invite of a key again, with a new guest link",
    responses={200: {"model": InviteStatus}},
    description="Scope: smartlock.auth. Nuki has no resend (users delete and recreate the "
    "key). For an app key or a keypad code given to an account user. The key's earlier guest "
    "links stop working; the answer is the new invite, queued.",
)
def resend_invite(
    request: Request,
    smartlockId: int = Path(description="The smartlock id", **LOCK_ID),
    id: str = Path(description="The key's id (24 hex digits)"),
    caller: Caller = Depends(auth_scope),
) -> Response:
    runtime = runtime_of(request)
    shape = runtime.db.transaction(
        lambda session: invites.resend_invite(session, caller, smartlockId, id)
    )
    runtime.mail_worker.submit([MAIL_QUEUE])
    return json_response(shape)
