"""SmartlockLog, SmartlockAction, and the emulator's own shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field

from keyhouse.rules.actions import ACTIONS_BY_TYPE
from keyhouse.schemas.auth import _date_or_none
from keyhouse.schemas.base import ApiDateTime, Int, RequestShape, ResponseShape


class SmartlockLog(ResponseShape):
    id: str
    smartlock_id: int
    device_type: int = Field(description="0 lock/box, 2 opener, 3 smartdoor")
    account_user_id: int | None = None
    auth_id: str | None = Field(None, description="The id of the key used (24 hex digits)")
    name: str = Field(description="The name of the key or person")
    action: int = Field(description="1 unlock, 2 lock, 3 unlatch, 4 lock 'n' go, 5 … with unlatch")
    trigger: int = Field(description="0 system, 1 manual, 2 button, 4 web, 5 app, 255 keypad")
    state: int = Field(description="0 success, 1 motor blocked, 4 busy, 9 rejected …")
    auto_unlock: bool
    date: ApiDateTime
    source: int | None = Field(None, description="0 default, 1 keypad code")
    error: str | None = None


class SmartlockAction(RequestShape):
    action: Int = Field(
        description="types 0/3/4: 1 unlock, 2 lock, 3 unlatch, 4 lock 'n' go, 5 …",
        json_schema_extra={"enum": sorted(set().union(*ACTIONS_BY_TYPE.values()))},
    )
    option: Int = Field(
        0,
        description="Option mask: 0 none, 2 force, 4 full lock",
        json_schema_extra={"minimum": 0, "maximum": 7},
    )

    example: ClassVar[dict[str, Any]] = {"action": 1, "option": 0}


OptionalInstant = Annotated[datetime | None, BeforeValidator(_date_or_none)]
Fault = Literal["busy", "motorBlocked", "codeExists", "full"]


class EmulatorLockUpdate(RequestShape):
    online: bool | None = None
    latency_ms: Int | None = Field(None, ge=0, le=10_000)
    fault: Fault | None = None

    example: ClassVar[dict[str, Any]] = {"online": False, "latencyMs": 0, "fault": None}


class Tamper(RequestShape):
    """Change the lock's own copy of a key behind the server's back (to test drift repair)."""

    auth_id: Int = Field(ge=1, description="The key's slot on the lock (its authId)")
    remove: bool = Field(False, description="Remove the key from the lock")
    name: str | None = Field(None, min_length=1, max_length=32)
    enabled: bool | None = None
    code: Int | None = Field(None, ge=100000, le=999999)

    example: ClassVar[dict[str, Any]] = {"authId": 2, "remove": True}


class EmulatorLock(ResponseShape):
    smartlock_id: int
    online: bool
    latency_ms: int
    fault: str | None = None
    state: int
    keypad: bool
    battery_charge: int
    door_state: int
    auths: int = Field(description="Authorizations the device holds")
    pending_operations: int = Field(description="Changes queued for the lock")


class KeypadEntry(RequestShape):
    code: Int
    at: OptionalInstant = Field(None, description="When (RFC 3339); default now")

    example: ClassVar[dict[str, Any]] = {"code": 345678, "at": "2026-12-07T09:00:00Z"}


class AppKeyUse(RequestShape):
    auth_id: Int = Field(description="The key's slot on the lock (its authId)")
    action: Int = Field(1, description="1 unlock, 2 lock, 3 unlatch …")
    remote: bool = Field(False, description="True for a remote action (needs remoteAllowed)")
    at: OptionalInstant = Field(None, description="When (RFC 3339); default now")

    example: ClassVar[dict[str, Any]] = {"authId": 3, "action": 1, "remote": False}


class DoorDecision(ResponseShape):
    opened: bool
    reason: str
    state: int | None = Field(None, description="The lock's state afterwards")
    log_id: str | None = Field(None, description="The log entry of the attempt")


class EmulatorNuki(ResponseShape):
    """The stand-in's Nuki-mode switches for the caller's account."""

    too_many_requests: int = Field(
        description="How many of the next requests to Nuki's paths answer an HTML 429"
    )
    keys_appear_after_seconds: float = Field(
        description="How long a new key stays out of the listings"
    )
    hide_new_keys: bool = Field(
        description="Keys created while this is true never appear (until it is turned off)"
    )
    fail_next: int = Field(description="How many of the next requests answer failStatus")
    fail_status: int = Field(description="What failNext's requests answer: 402, 426 or 5xx")


class EmulatorNukiUpdate(RequestShape):
    too_many_requests: Int | None = Field(
        None, ge=0, le=1000, description="The next N requests answer an HTML 429"
    )
    keys_appear_after_seconds: float | None = Field(
        None, ge=0, le=3600, description="Overrides KEYHOUSE_NUKI_KEYS_APPEAR_SECONDS"
    )
    hide_new_keys: bool | None = Field(None, description="New keys never appear while true")
    fail_next: Int | None = Field(
        None, ge=0, le=1000, description="The next N requests answer failStatus"
    )
    fail_status: Literal[402, 426, 500, 502, 503, 504] | None = Field(
        None, description="What failNext's requests answer (the stand-in's last set: 503)"
    )

    example: ClassVar[dict[str, Any]] = {"tooManyRequests": 2, "hideNewKeys": True}
