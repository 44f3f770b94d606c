"""/smartlock/{id}/action, /action/lock, /action/unlock and /sync."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from keyhouse.api.body import validate
from keyhouse.api.body_dependency import body_doc, json_body
from keyhouse.api.edge import LOCK_ID
from keyhouse.api.idempotency import idempotent, respond
from keyhouse.api.security import runtime_of, scoped
from keyhouse.runtime import Runtime
from keyhouse.schemas.log import SmartlockAction
from keyhouse.services import doors, idempotency
from keyhouse.services.caller import Caller
from keyhouse.services.idempotency import NO_CONTENT, Answer, IdempotentRequest

router = APIRouter(tags=["Smartlock"])
action_scope = scoped("smartlock.action")
LOCK_ID_DOC = "The smartlock id"
ACTION_NOTE = (
    " Keyhouse answers once the lock has moved: 204, or 409 when the lock is offline or "
    "reports a fault (motor blocked), or 423 with Retry-After when it is busy. Every attempt "
    "is in the activity log."
)


def _once(runtime: Runtime, key: IdempotentRequest | None, act: Callable[[], object]) -> Response:
    """``act()`` (the lock moves: not one transaction), once per idempotency key; 204."""

    def attempt() -> Answer:
        act()
        return NO_CONTENT

    return respond(idempotency.run_once(runtime.db, key, attempt))


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
    key: IdempotentRequest | None = Depends(idempotent),
) -> Response:
    data = validate(body, SmartlockAction)
    runtime = runtime_of(request)
    return _once(
        runtime,
        key,
        lambda: doors.lock_action(runtime, caller, smartlockId, data.action, data.option),
    )


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
    key: IdempotentRequest | None = Depends(idempotent),
) -> Response:
    runtime = runtime_of(request)
    return _once(runtime, key, lambda: doors.lock_action(runtime, caller, smartlockId, 2, 0))


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
    key: IdempotentRequest | None = Depends(idempotent),
) -> Response:
    runtime = runtime_of(request)
    return _once(runtime, key, lambda: doors.lock_action(runtime, caller, smartlockId, 1, 0))


@router.post(
    "/smartlock/{smartlockId}/sync",
    summary="Syncs a smartlock",
    operation_id="SmartlockSyncResource_post_post",
    status_code=204,
    description="Scope: smartlock.action. Re-reads the authorizations the lock holds and queues "
    "what makes them match the server's keys (missing or different keys are written again, "
    "unknown ones removed). On a lock of a linked Nuki Web account the safer state wins "
    "instead: a change made there that narrows access is adopted, one that widens it is put "
    "back, a key deleted there is deleted here (never re-created), a key made there is "
    "listed with origin upstream (never deleted); each is in the audit log. 409 when the "
    "lock is offline.",
)
def sync(
    request: Request,
    smartlockId: int = Path(description=LOCK_ID_DOC, **LOCK_ID),
    caller: Caller = Depends(action_scope),
    key: IdempotentRequest | None = Depends(idempotent),
) -> Response:
    runtime = runtime_of(request)
    return _once(runtime, key, lambda: doors.sync_lock(runtime, caller, smartlockId))
