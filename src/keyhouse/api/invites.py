"""/keyhouse/…: invites and the delivery of their e-mail (Keyhouse's own, beside the Nuki paths)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from keyhouse.api.edge import LOCK_ID
from keyhouse.api.idempotency import answer_json, idempotent, respond
from keyhouse.api.paging import (
    PAGED_HEADERS_DOC,
    after_query,
    checked_cursor,
    checked_limit,
    limit_query,
    list_cap,
    page_response,
)
from keyhouse.api.security import describe_rule, runtime_of, scoped, too_many
from keyhouse.runtime import MAIL_QUEUE
from keyhouse.schemas.invite import InviteStatus
from keyhouse.services import idempotency, invites, lookup
from keyhouse.services.caller import Caller
from keyhouse.services.idempotency import IdempotentRequest
from keyhouse.services.present import to_json

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
    "links stop working; the answer is the new invite, queued. Limited per key "
    "(KEYHOUSE_RESEND_LIMIT, default 5 an hour): beyond it, 429 with Retry-After and the time "
    "the next resend is allowed.",
)
def resend_invite(
    request: Request,
    smartlockId: int = Path(description="The smartlock id", **LOCK_ID),
    id: str = Path(description="The key's id (24 hex digits)"),
    caller: Caller = Depends(auth_scope),
    key: IdempotentRequest | None = Depends(idempotent),
) -> Response:
    runtime = runtime_of(request)
    with runtime.db.read() as session:
        key_id = lookup.key_on_lock(session, caller, smartlockId, id).id  # 404 before counting
    rule = runtime.settings.resend_limit
    verdict = runtime.rate_limits.hit(rule, "resend", caller.account_id, key_id)
    if not verdict.allowed:
        raise too_many(
            verdict,
            f"the invite of key {key_id} was sent again too often "
            f"({describe_rule(runtime.rate_limits, rule)}); the next resend is allowed later",
        )
    sent, answer = idempotency.once(
        runtime.db,
        key,
        lambda session: to_json(invites.resend_invite(session, caller, smartlockId, id)),
        answer_json,
    )
    if sent is not None:
        runtime.mail_worker.submit([MAIL_QUEUE])
    return respond(answer)
