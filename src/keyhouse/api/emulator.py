"""/emulator/…: control virtual locks and act as a person at the door (scope ``emulator``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from keyhouse.api.body import validate
from keyhouse.api.body_dependency import body_doc, json_body
from keyhouse.api.edge import LOCK_ID
from keyhouse.api.idempotency import idempotent, once_response
from keyhouse.api.responses import json_response
from keyhouse.api.security import runtime_of, scoped
from keyhouse.devices.link import DoorEvent
from keyhouse.errors import NotFound, ValidationFailed
from keyhouse.runtime import Runtime
from keyhouse.schemas.log import (
    AppKeyUse,
    DoorDecision,
    EmulatorLock,
    EmulatorLockUpdate,
    EmulatorNuki,
    EmulatorNukiUpdate,
    KeypadEntry,
    Tamper,
)
from keyhouse.services import doors, nuki_mode
from keyhouse.services.caller import Caller
from keyhouse.services.idempotency import IdempotentRequest
from keyhouse.services.present import Shape, shape_dict
from keyhouse.store import repo

router = APIRouter(prefix="/emulator", tags=["Emulator"])
emulator_scope = scoped("emulator")
LOCK_ID_DOC = "The virtual lock's smartlockId"
FIELDS = {"online": "online", "latencyMs": "latency_ms", "fault": "fault"}


def emulator_shape(runtime: Runtime, smartlock_id: int) -> Shape:
    state = runtime.link.emulator_state(smartlock_id)
    with runtime.db.read() as session:
        pending = repo.unsynced_count(session, smartlock_id)
    shape = shape_dict(
        EmulatorLock,
        smartlock_id=state.smartlock_id,
        online=state.online,
        latency_ms=state.latency_ms,
        state=state.state,
        keypad=state.keypad,
        battery_charge=state.battery_charge,
        door_state=state.door_state,
        auths=state.auths,
        pending_operations=pending or 0,
    )
    # fault is always present: null when none is injected (shape_dict drops None values).
    return {**shape, "fault": state.fault}


def decision(runtime: Runtime, smartlock_id: int, event: DoorEvent, log_id: str) -> Response:
    state = runtime.link.emulator_state(smartlock_id).state
    return json_response(
        shape_dict(
            DoorDecision, opened=event.opened, reason=event.reason, state=state, log_id=log_id
        )
    )


@router.get(
    "/smartlock/{smartlockId}",
    summary="The virtual lock's emulator state",
    responses={200: {"model": EmulatorLock}},
)
def get_lock(
    request: Request,
    smartlockId: int = Path(description=LOCK_ID_DOC, **LOCK_ID),
    caller: Caller = Depends(emulator_scope),
) -> Response:
    runtime = runtime_of(request)
    doors.virtual_lock_of(runtime, caller, smartlockId)
    return json_response(emulator_shape(runtime, smartlockId))


@router.post(
    "/smartlock/{smartlockId}",
    summary="Take a virtual lock offline or online, slow it down, or inject a fault",
    responses={200: {"model": EmulatorLock}},
    openapi_extra=body_doc("EmulatorLockUpdate", description="Only the fields to change"),
    description="Faults: busy (device error 45 on every call), motorBlocked (actions end in "
    "state 254), codeExists (keypad codes are refused with device error 2A), full (new "
    "authorizations refused with device error 13); null clears the fault. A lock that comes "
    "back online (or whose fault is cleared) receives what it lacks at once: "
    "removals first, then each key as it is now.",
)
def configure(
    request: Request,
    smartlockId: int = Path(description=LOCK_ID_DOC, **LOCK_ID),
    caller: Caller = Depends(emulator_scope),
    body: Any = Depends(json_body),
    key: IdempotentRequest | None = Depends(idempotent),
) -> Response:
    runtime = runtime_of(request)
    return once_response(runtime.db, key, lambda: _configure(runtime, caller, smartlockId, body))


def _configure(runtime: Runtime, caller: Caller, smartlockId: int, body: Any) -> Response:
    doors.virtual_lock_of(runtime, caller, smartlockId)
    data = validate(body, EmulatorLockUpdate)
    changes = {
        FIELDS[alias]: getattr(data, FIELDS[alias])
        for alias in FIELDS
        if FIELDS[alias] in data.model_fields_set
    }
    for name in ("online", "latency_ms"):
        if name in changes and changes[name] is None:
            del changes[name]
    runtime.link.configure(smartlockId, changes)
    if changes.get("online") or ("fault" in changes and changes["fault"] is None):
        runtime.retry_now(smartlockId)
    return json_response(emulator_shape(runtime, smartlockId))


@router.post(
    "/smartlock/{smartlockId}/keypad",
    summary="Enter a code on the lock's keypad",
    responses={200: {"model": DoorDecision}},
    openapi_extra=body_doc("KeypadEntry", description="The code, and when (default now)"),
)
def keypad(
    request: Request,
    smartlockId: int = Path(description=LOCK_ID_DOC, **LOCK_ID),
    caller: Caller = Depends(emulator_scope),
    body: Any = Depends(json_body),
    key: IdempotentRequest | None = Depends(idempotent),
) -> Response:
    runtime = runtime_of(request)
    data = validate(body, KeypadEntry)

    def enter() -> Response:
        event, log_id = doors.keypad_entry(runtime, caller, smartlockId, data.code, data.at)
        return decision(runtime, smartlockId, event, log_id)

    return once_response(runtime.db, key, enter)


@router.post(
    "/smartlock/{smartlockId}/app",
    summary="Use an app key at the door or remotely",
    responses={200: {"model": DoorDecision}},
    openapi_extra=body_doc("AppKeyUse", description="The key's slot (authId), action, remote"),
)
def app_key(
    request: Request,
    smartlockId: int = Path(description=LOCK_ID_DOC, **LOCK_ID),
    caller: Caller = Depends(emulator_scope),
    body: Any = Depends(json_body),
    key: IdempotentRequest | None = Depends(idempotent),
) -> Response:
    runtime = runtime_of(request)
    data = validate(body, AppKeyUse)

    def use() -> Response:
        event, log_id = doors.app_key_use(
            runtime, caller, smartlockId, data.auth_id, data.action, data.remote, data.at
        )
        return decision(runtime, smartlockId, event, log_id)

    return once_response(runtime.db, key, use)


@router.post(
    "/smartlock/{smartlockId}/button",
    summary="Press the lock's button (unlocks a locked lock, locks an unlocked one)",
    responses={200: {"model": DoorDecision}},
)
def press_button(
    request: Request,
    smartlockId: int = Path(description=LOCK_ID_DOC, **LOCK_ID),
    caller: Caller = Depends(emulator_scope),
    key: IdempotentRequest | None = Depends(idempotent),
) -> Response:
    runtime = runtime_of(request)

    def press() -> Response:
        event, log_id = doors.button(runtime, caller, smartlockId)
        return decision(runtime, smartlockId, event, log_id)

    return once_response(runtime.db, key, press)


@router.post(
    "/smartlock/{smartlockId}/tamper",
    summary="Change the lock's own copy of a key behind the server's back",
    responses={200: {"model": EmulatorLock}},
    openapi_extra=body_doc("Tamper", description="The key's slot, and remove or new values"),
    description="As if someone changed the lock directly: remove the key in a slot, or change "
    "its name, enabled or code on the lock only. The server notices at its next drift check "
    "(KEYHOUSE_DRIFT_CHECK_SECONDS) or at once on POST /smartlock/{id}/sync, and sets it right.",
)
def tamper(
    request: Request,
    smartlockId: int = Path(description=LOCK_ID_DOC),
    caller: Caller = Depends(emulator_scope),
    body: Any = Depends(json_body),
    key: IdempotentRequest | None = Depends(idempotent),
) -> Response:
    runtime = runtime_of(request)
    return once_response(runtime.db, key, lambda: _tamper(runtime, caller, smartlockId, body))


def _tamper(runtime: Runtime, caller: Caller, smartlockId: int, body: Any) -> Response:
    doors.virtual_lock_of(runtime, caller, smartlockId)
    data = validate(body, Tamper)
    changes = None
    if not data.remove:
        changes = {
            alias: getattr(data, name)
            for name, alias in (("name", "name"), ("enabled", "enabled"), ("code", "code"))
            if name in data.model_fields_set and getattr(data, name) is not None
        }
        if not changes:
            raise ValidationFailed(
                "say what to change on the lock: remove true, or a new name, enabled or code",
                field="remove",
                rule="required",
            )
    if not runtime.link.tamper(smartlockId, data.auth_id, changes):
        raise NotFound(
            f"slot {data.auth_id} of smartlock {smartlockId} is empty: use a key's authId",
            field="authId",
        )
    return json_response(emulator_shape(runtime, smartlockId))


# --- the stand-in's Nuki mode (KEYHOUSE_NUKI_MODE=1) ---------------------------------------------

NUKI_FIELDS = {
    "tooManyRequests": "too_many_requests",
    "keysAppearAfterSeconds": "keys_appear_after_seconds",
    "hideNewKeys": "hide_new_keys",
    "failNext": "fail_next",
    "failStatus": "fail_status",
}


def _nuki_mode_on(runtime: Runtime) -> None:
    if not runtime.settings.nuki_mode:
        raise NotFound(
            "this server is not in Nuki mode: start the stand-in with KEYHOUSE_NUKI_MODE=1 "
            "(see docs/simulator.md)",
            rule="nuki_mode",
        )


def _nuki_shape(switches: nuki_mode.Switches) -> Response:
    return json_response(
        shape_dict(
            EmulatorNuki,
            too_many_requests=switches.too_many_requests,
            keys_appear_after_seconds=switches.keys_appear_after_seconds,
            hide_new_keys=switches.hide_keys_since is not None,
            fail_next=switches.fail_next,
            fail_status=switches.fail_status,
        )
    )


@router.get(
    "/nuki",
    summary="The stand-in's Nuki-mode switches for your account",
    responses={200: {"model": EmulatorNuki}},
)
def get_nuki(request: Request, caller: Caller = Depends(emulator_scope)) -> Response:
    runtime = runtime_of(request)
    _nuki_mode_on(runtime)
    with runtime.db.read() as session:
        found = nuki_mode.switches(
            session, caller.account_id, runtime.settings.nuki_keys_appear_seconds
        )
    return _nuki_shape(found)


@router.post(
    "/nuki",
    summary="Switch the stand-in's Nuki-mode behaviours for your account",
    responses={200: {"model": EmulatorNuki}},
    openapi_extra=body_doc("EmulatorNukiUpdate", description="Only the fields to change"),
    description="Only with KEYHOUSE_NUKI_MODE=1. tooManyRequests: the next N requests to the "
    "Nuki paths answer 429 with an HTML page; keysAppearAfterSeconds: how long a new key stays "
    "out of the listings (null: the server's setting); hideNewKeys: keys created while true "
    "never appear; failNext: the next N requests answer failStatus (402 and 426 with Nuki's "
    "error body, 5xx with a proxy's HTML page).",
)
def configure_nuki(
    request: Request,
    caller: Caller = Depends(emulator_scope),
    body: Any = Depends(json_body),
    key: IdempotentRequest | None = Depends(idempotent),
) -> Response:
    runtime = runtime_of(request)
    return once_response(runtime.db, key, lambda: _configure_nuki(runtime, caller, body))


def _configure_nuki(runtime: Runtime, caller: Caller, body: Any) -> Response:
    _nuki_mode_on(runtime)
    data = validate(body, EmulatorNukiUpdate)
    changes = {
        name: getattr(data, name)
        for alias, name in NUKI_FIELDS.items()
        if name in data.model_fields_set
    }
    found = runtime.db.transaction(
        lambda session: nuki_mode.configure(
            session, caller.account_id, changes, runtime.settings.nuki_keys_appear_seconds
        ),
        what="switching the Nuki mode",
    )
    return _nuki_shape(found)
