"""SmartlockAuth ("a key") and its create/update bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator

from keyhouse.errors import Problem
from keyhouse.rules.dates import parse_api_datetime
from keyhouse.rules.keypad import check_keypad_code, keypad_code_from_text
from keyhouse.rules.violations import RuleViolation
from keyhouse.schemas.base import ApiDateTime, Int, LockId, RequestShape, ResponseShape

# A keypad code: a number, or a string of digits judged as written ("000000" is not 0).
KeypadCode = Annotated[Int, BeforeValidator(keypad_code_from_text)]


def _code_problems(data: dict[str, Any]) -> list[Problem]:
    """The keypad code's own rules, for an answer that refuses the body for other reasons."""
    code = data.get("code")
    if not isinstance(code, int | str) or isinstance(code, bool):
        return []
    try:
        number = keypad_code_from_text(code)
        if isinstance(number, int):
            check_keypad_code(number)
    except RuleViolation as violation:
        return [Problem(violation.field, violation.rule, violation.message)]
    return []


class ObjectIdShape(ResponseShape):
    """How api.nuki.io serialises a MongoDB ObjectId (the official ``ObjectId`` schema)."""

    timestamp: int
    counter: int
    time: int
    date: ApiDateTime
    machine_identifier: int
    process_identifier: int
    time_second: int


class SmartlockAuth(ResponseShape):
    id: str = Field(description="The key's unique id: 24 hex digits")
    smartlock_id: int
    account_user_id: int | None = None
    auth_id: int | None = Field(
        None, description="The slot the lock gave the key; set once applied"
    )
    code: int | None = None
    fingerprints: dict[str, str] | None = None
    type: int = Field(description="0 app, 1 bridge, 2 fob, 3 keypad, 13 keypad code")
    name: str
    enabled: bool
    remote_allowed: bool
    lock_count: int
    allowed_from_date: ApiDateTime | None = None
    allowed_until_date: ApiDateTime | None = None
    allowed_week_days: int | None = None
    allowed_from_time: int | None = None
    allowed_until_time: int | None = None
    last_active_date: ApiDateTime | None = None
    creation_date: ApiDateTime | None = None
    update_date: ApiDateTime | None = None
    operation_id: ObjectIdShape | None = Field(
        None, description="Set while a change waits for the lock to confirm it"
    )
    error: str | None = Field(None, description="Why the lock refused the last change")
    app_id: int | None = None
    auth_type_as_string: str | None = None
    smart_actions_enabled: bool | None = Field(
        None,
        description="Keyhouse: whether smart actions are on (set in the create body; Nuki's "
        "own answers do not carry it)",
    )
    sync_state: str | None = Field(
        None,
        description="Keyhouse: pending (the lock has not confirmed yet), applied, failed, deleting",
    )
    verified_date: ApiDateTime | None = Field(
        None,
        description="Keyhouse: when the lock last confirmed it holds this key as shown (when "
        "it took the change, or at a drift check)",
    )
    warning: str | None = Field(
        None,
        description="Keyhouse: what the key's owner should know about it, e.g. that an app key "
        "without remote use can't open the door from a Keyhouse guest link",
    )
    origin: str | None = Field(
        None,
        description="Keyhouse: where the key comes from: keyhouse (made in Keyhouse) or "
        "upstream (made at the lock's upstream, e.g. in the owner's Nuki app, and found there "
        "by a drift check: listed here so the owner sees it, never deleted by Keyhouse)",
    )


def _date_or_none(value: Any, info: ValidationInfo) -> Any:
    if value is None or isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError(
            f"must be a date-time string such as 2026-12-01T08:00:00.000Z, not {value!r}"
        )
    assert info.field_name is not None
    from pydantic.alias_generators import to_camel

    return parse_api_datetime(value, to_camel(info.field_name))


OptionalApiDate = Annotated[datetime | None, BeforeValidator(_date_or_none)]

_WEEKDAYS = {"minimum": 0, "maximum": 127}
# Checked by the key rules (with the 20-character limit of keypad codes), documented here.
_NAME: dict[str, Any] = {"minLength": 1, "maxLength": 32}
_MINUTES = {"minimum": 0, "maximum": 1439}

AUTH_READ_ONLY = frozenset(
    {
        "id",
        "smartlockId",
        "authId",
        "lockCount",
        "lastActiveDate",
        "creationDate",
        "updateDate",
        "operationId",
        "error",
        "appId",
        "authTypeAsString",
        "fingerprints",
        "syncState",
        "verifiedDate",
        "warning",
        "origin",
    }
)


class _Restrictions(RequestShape):
    allowed_from_date: OptionalApiDate = Field(
        None, description="Validity start, an instant in UTC (RFC 3339)"
    )
    allowed_until_date: OptionalApiDate = Field(
        None, description="Validity end, an instant in UTC (RFC 3339); null clears it"
    )
    allowed_week_days: Int | None = Field(
        None,
        description="Bitmask: 64 Mon, 32 Tue, 16 Wed, 8 Thu, 4 Fri, 2 Sat, 1 Sun",
        json_schema_extra=_WEEKDAYS,
    )
    allowed_from_time: Int | None = Field(
        None,
        description="Daily window start, minutes from midnight, lock's local time",
        json_schema_extra=_MINUTES,
    )
    allowed_until_time: Int | None = Field(
        None,
        description="Daily window end, minutes from midnight, lock's local time",
        json_schema_extra=_MINUTES,
    )


class SmartlockAuthCreate(_Restrictions):
    ignored_fields: ClassVar[frozenset[str]] = AUTH_READ_ONLY

    name: str = Field(
        description="Max 32 characters (20 for keypad codes)", json_schema_extra=_NAME
    )
    account_user_id: Int | None = Field(None, description="Required unless type is 13")
    remote_allowed: bool = Field(description="True lets the key operate the lock remotely")
    smart_actions_enabled: bool | None = None
    type: Int = Field(0, description="0 app (default), 2 fob, 13 keypad code")
    code: KeypadCode | None = Field(
        None, description="Keypad code (type 13): 6 digits 1-9, not starting with 12"
    )

    @classmethod
    def value_problems(cls, data: dict[str, Any]) -> list[Problem]:
        return _code_problems(data)

    @field_validator("type", mode="before")
    @classmethod
    def _type_default_on_null(cls, value: Any) -> Any:
        return 0 if value is None else value

    example: ClassVar[dict[str, Any]] = {
        "name": "Guest December",
        "accountUserId": 1,
        "remoteAllowed": False,
        "smartActionsEnabled": False,
        "allowedFromDate": "2026-12-01T00:00:00.000Z",
        "allowedUntilDate": "2027-01-31T23:00:00.000Z",
        "allowedWeekDays": 124,
        "allowedFromTime": 480,
        "allowedUntilTime": 1080,
    }


class SmartlocksAuthCreate(SmartlockAuthCreate):
    smartlock_ids: list[LockId] = Field(
        description="The locks to create the key on", max_length=10_000
    )

    example: ClassVar[dict[str, Any]] = {
        "name": "Cleaner",
        "smartlockIds": [18298712180],
        "type": 13,
        "code": 345678,
        "remoteAllowed": False,
        "allowedWeekDays": 64,
        "allowedFromTime": 540,
        "allowedUntilTime": 720,
    }


class SmartlockAuthUpdate(_Restrictions):
    """Partial: an omitted field keeps its value; an explicit null clears it."""

    ignored_fields: ClassVar[frozenset[str]] = AUTH_READ_ONLY | {"type"}
    renamed_fields: ClassVar[dict[str, str]] = {"enable": "enabled"}

    name: str | None = Field(
        None, description="Max 32 characters (20 for keypad codes)", json_schema_extra=_NAME
    )
    account_user_id: Int | None = None
    enabled: bool | None = Field(None, description="False disables the key (also accepted: enable)")
    remote_allowed: bool | None = None
    smart_actions_enabled: bool | None = None
    code: KeypadCode | None = None

    @classmethod
    def value_problems(cls, data: dict[str, Any]) -> list[Problem]:
        return _code_problems(data)

    example: ClassVar[dict[str, Any]] = {"name": "Guest December (extended)"}


class SmartlockAuthMultiUpdate(SmartlockAuthUpdate):
    ignored_fields: ClassVar[frozenset[str]] = (AUTH_READ_ONLY - {"id"}) | {"type"}

    id: str = Field(description="The key's unique id")

    # The official SmartlockAuthMultiUpdate requires id and name: an example valid for both.
    example: ClassVar[dict[str, Any]] = {
        "id": "65219648fe57075d71a6cb01",
        "name": "Guest December",
        "enabled": False,
    }
