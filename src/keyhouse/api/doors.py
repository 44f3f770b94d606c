"""/smartlock/{id}/action, /action/lock, /action/unlock and /sync."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from keyhouse.api.body import validate
from keyhouse.api.body_dependency import body_doc, json_body
from keyhouse.api.edge import LOCK_ID
from keyhouse.api.responses import no_content
from keyhouse.api.security import runtime_of, scoped
from keyhouse.schemas.log import SmartlockAction
from keyhouse.services import doors
from keyhouse.services.caller import Caller

router = APIRouter(tags=["Smartlock"])
action_scope = scoped("smartlock.action")
LOCK_ID_DOC = "The smartlock id"
ACTION_NOTE = (
    " Keyhouse answers once the lock has moved: 204, or 409 when the lock is offline or "
    "reports a fault (motor blocked), or 423 with Retry-After when it is busy. Every attempt "
    "is in the activity log."
)


@router.post(
    "/smartlock/{smartlockId}/action",
    summary="Lock & unlock a smartlock",
    operation_id="SmartlockActionResource_post_post",
    status_code=204,
    openapi_extra=body_doc("SmartlockAction", description="The action and its option"),
    description="Scope: smartlock.action." + ACTION_NOTE,
)
def action(
    request: Request,
    smartlockId: int = Path(description=LOCK_ID_DOC, **LOCK_ID),
    caller: Caller = Depends(action_scope),
    body: Any = Depends(json_body),
) -> Response:
    data = validate(body, SmartlockAction)
    doors.lock_action(runtime_of(request), caller, smartlockId, data.action, data.option)
    return no_content()


@router.post(
    "/smartlock/{smartlockId}/action/lock",
    summary="Lock a smartlock",
    operation_id="SmartlockLockActionResource_post_post",
    status_code=204,
    description="Scope: smartlock.action." + ACTION_NOTE,
)
def lock(
    request: Request,
    smartlockId: int = Path(description=LOCK_ID_DOC, **LOCK_ID),
    caller: Caller = Depends(action_scope),
) -> Response:
    doors.lock_action(runtime_of(request), caller, smartlockId, 2, 0)
    return no_content()


@router.post(
    "/smartlock/{smartlockId}/action/unlock",
    summary="Unlock a smartlock",
    operation_id="SmartlockUnlockActionResource_post_post",
    status_code=204,
    description="Scope: smartlock.action." + ACTION_NOTE,
)
def unlock(
    request: Request,
    smartlockId: int = Path(description=LOCK_ID_DOC, **LOCK_ID),
    caller: Caller = Depends(action_scope),
) -> Response:
    doors.lock_action(runtime_of(request), caller, smartlockId, 1, 0)
    return no_content()


@router.post(
    "/smartlock/{smartlockId}/sync",
    summary="Syncs a smartlock",
    operation_id="SmartlockSyncResource_post_post",
    status_code=204,
    description="Scope: smartlock.action. Re-reads the authorizations the lock holds and queues "
    "what makes them match the server's keys (missing or different keys are written again, "
    "unknown ones removed). 409 when the lock is offline.",
)
def sync(
    request: Request,
    smartlockId: int = Path(description=LOCK_ID_DOC, **LOCK_ID),
    caller: Caller = Depends(action_scope),
) -> Response:
    doors.sync_lock(runtime_of(request), caller, smartlockId)
    return no_content()
