"""/keyhouse/audit: the account's audit log (Keyhouse's own, beside the Nuki paths)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from keyhouse.api.edge import ID32, LOCK_ID
from keyhouse.api.responses import json_response
from keyhouse.api.security import runtime_of, scoped
from keyhouse.schemas.audit import AuditEvent
from keyhouse.services import audit
from keyhouse.services.caller import Caller

router = APIRouter(prefix="/keyhouse", tags=["Audit log (Keyhouse)"])
# The owner's view of the account: the scope "account" (a token for keys alone can't read it).
audit_scope = scoped("account")


@router.get(
    "/audit",
    summary="The audit log: who changed keys, users, tokens and locks, when, and from where",
    responses={200: {"model": list[AuditEvent]}},
    description="Scope: account. Newest first. Every change to keys, account users, invites, "
    "tokens and locks is recorded in the same transaction as the change, with the token (or "
    "'operator' for the CLI on the server, 'system' for the server itself), the client's "
    "address, and the thing before and after (for an update only the changed fields; never a "
    "keypad code or a secret). Paging: when there are older events the answer carries "
    '`Link: <…&before=ID>; rel="next"`. Events are kept for KEYHOUSE_AUDIT_RETENTION_DAYS '
    "(default 365).",
)
def list_audit(
    request: Request,
    action: str | None = Query(
        None,
        description="An action (key.update) or a family (key: every key.… action)",
        max_length=65,
    ),
    targetType: str | None = Query(None, description="key, user, lock or token", max_length=32),
    targetId: str | None = Query(None, description="The target's id", max_length=64),
    smartlockId: int | None = Query(None, description="Only changes to this lock", **LOCK_ID),
    since: str | None = Query(
        None,
        description="From this instant (RFC 3339, e.g. 2026-12-01T08:00:00Z) or day "
        "(YYYY-MM-DD, in UTC)",
    ),
    until: str | None = Query(
        None, description="Until this instant or day (the whole day), as since"
    ),
    limit: int = Query(
        audit.AUDIT_LIMIT_DEFAULT,
        description=f"How many events: default {audit.AUDIT_LIMIT_DEFAULT}, "
        f"max {audit.AUDIT_LIMIT_MAX}",
        ge=1,
        le=audit.AUDIT_LIMIT_MAX,
    ),
    before: int | None = Query(
        None, description="Only events older than this event id (the next page)", **ID32
    ),
    caller: Caller = Depends(audit_scope),
) -> Response:
    where = audit.audit_filter(
        action=action,
        target_type=targetType,
        target_id=targetId,
        smartlock_id=smartlockId,
        since=since,
        until=until,
    )
    with runtime_of(request).db.read() as session:
        found = audit.list_events(session, caller, where, before=before, limit=limit)
    response = json_response(found.events)
    if found.next_before is not None:
        following = request.url.include_query_params(before=found.next_before)
        response.headers["Link"] = f'<{following}>; rel="next"'
    return response
