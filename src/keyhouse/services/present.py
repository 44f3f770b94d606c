"""Rows to response shapes (the schemas), built without re-validating our own data."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

import orjson
from pydantic import BaseModel
from sqlalchemy import Row

from keyhouse.rules.dates import format_api_datetime, utcnow
from keyhouse.rules.keypad import APP_KEY_TYPE
from keyhouse.rules.sync import sync_state as derive_sync_state
from keyhouse.rules.timezones import nuki_timezone_id, offset_minutes
from keyhouse.schemas.account_user import AccountUser
from keyhouse.schemas.auth import ObjectIdShape, SmartlockAuth
from keyhouse.schemas.log import SmartlockLog
from keyhouse.schemas.smartlock import Smartlock, SmartlockConfig, SmartlockState
from keyhouse.store import models, repo

Shape = dict[str, Any]


@functools.cache
def _aliases(shape: type[BaseModel]) -> dict[str, str]:
    return {name: field.alias or name for name, field in shape.model_fields.items()}


def shape_dict(shape: type[BaseModel], **values: Any) -> Shape:
    """A response body as the schema ``shape`` defines it: its camelCase names, absent fields
    omitted, dates as ``2026-12-01T08:00:00.000Z``. Built from our own rows without
    re-validating them (the read path is what clients poll); a name the schema lacks fails."""
    aliases = _aliases(shape)
    return {
        aliases[name]: format_api_datetime(value) if type(value) is datetime else value
        for name, value in values.items()
        if value is not None
    }


def to_json(value: Shape | Sequence[Shape]) -> bytes:
    return orjson.dumps(value)


def object_id_shape(hex_id: str | None) -> Shape | None:
    """A 24-hex id as api.nuki.io serialises a MongoDB ObjectId."""
    if not hex_id:
        return None
    raw = bytes.fromhex(hex_id)
    seconds = int.from_bytes(raw[0:4], "big")
    return shape_dict(
        ObjectIdShape,
        timestamp=seconds,
        counter=int.from_bytes(raw[9:12], "big"),
        time=seconds * 1000,
        date=datetime.fromtimestamp(seconds, UTC),
        machine_identifier=int.from_bytes(raw[4:7], "big"),
        process_identifier=int.from_bytes(raw[7:9], "big"),
        time_second=seconds,
    )


# A key's fields as the schema names them, in the order ``_auth_values`` gives their values.
_AUTH_FIELDS = (
    "id",
    "smartlock_id",
    "account_user_id",
    "auth_id",
    "code",
    "type",
    "name",
    "enabled",
    "remote_allowed",
    "lock_count",
    "allowed_from_date",
    "allowed_until_date",
    "allowed_week_days",
    "allowed_from_time",
    "allowed_until_time",
    "last_active_date",
    "creation_date",
    "update_date",
    "operation_id",
    "error",
    "auth_type_as_string",
    "smart_actions_enabled",
    "sync_state",
    "verified_date",
    "warning",
    "origin",
)
_AUTH_KEYS = tuple(_aliases(SmartlockAuth)[name] for name in _AUTH_FIELDS)
# A stored key's values in the order of ``repo.LISTING_COLUMNS``.
_stored_values = attrgetter(*(column.key for column in repo.LISTING_COLUMNS))


def auth_shape(row: models.SmartlockAuth | Row[Any]) -> Shape:
    """A key as the API shows it, from its model or a row of ``repo.LISTING_COLUMNS`` (the
    listings: unpacked as a tuple, the fastest way through a hundred rows)."""
    values = row if isinstance(row, Row) else _stored_values(row)
    (
        id_,
        smartlock_id,
        account_user_id,
        auth_id,
        code,
        key_type,
        name,
        enabled,
        remote_allowed,
        lock_count,
        allowed_from_date,
        allowed_until_date,
        allowed_week_days,
        allowed_from_time,
        allowed_until_time,
        last_active_date,
        created_at,
        updated_at,
        operation_id,
        error,
        smart_actions_enabled,
        revision,
        applied_revision,
        failed_revision,
        deleting,
        verified_at,
        origin,
    ) = values
    sync_state = derive_sync_state(deleting, revision, applied_revision, failed_revision)
    # The operation is shown while it runs (pending, deleting); once the lock answered, not.
    running = sync_state == "pending" or sync_state == "deleting"
    shown = (
        id_,
        smartlock_id,
        account_user_id,
        auth_id,
        code,
        key_type,
        name,
        enabled,
        remote_allowed,
        lock_count,
        allowed_from_date,
        allowed_until_date,
        allowed_week_days,
        allowed_from_time,
        allowed_until_time,
        last_active_date,
        created_at,
        updated_at,
        object_id_shape(operation_id) if running else None,
        error,
        _AUTH_TYPE_NAMES.get(key_type),
        smart_actions_enabled,
        sync_state,
        verified_at if sync_state == "applied" else None,
        key_warning(key_type, remote_allowed),
        origin,
    )
    return {
        key: format_api_datetime(value) if type(value) is datetime else value
        for key, value in zip(_AUTH_KEYS, shown, strict=True)
        if value is not None
    }


NOT_REMOTE_WARNING = (
    "remoteAllowed is false, so this app key can't open the door from its Keyhouse guest link "
    "(Keyhouse has no app to use it at the door): set remoteAllowed to true, or give the guest "
    "a keypad code (type 13)"
)


def key_warning(key_type: int, remote_allowed: bool) -> str | None:
    """What the owner should know about a key, or None."""
    if key_type == APP_KEY_TYPE and not remote_allowed:
        return NOT_REMOTE_WARNING
    return None


_AUTH_TYPE_NAMES = {
    0: "APP",
    1: "BRIDGE",
    2: "FOB",
    3: "KEYPAD",
    13: "KEYPAD_CODE",
    14: "Z_KEY",
    15: "VIRTUAL",
}


def user_shape(row: models.AccountUser) -> Shape:
    return shape_dict(
        AccountUser,
        account_user_id=row.id,
        account_id=row.account_id,
        type=row.type,
        email=row.email,
        name=row.name,
        language=row.language,
        creation_date=row.created_at,
        update_date=row.updated_at,
    )


def _keys(shape: type[BaseModel], *names: str) -> tuple[str, ...]:
    """The camelCase names of ``shape``'s fields ``names``, in that order (a name the schema
    lacks fails at import)."""
    aliases = _aliases(shape)
    return tuple(aliases[name] for name in names)


def _zipped(keys: tuple[str, ...], values: tuple[Any, ...]) -> Shape:
    """``keys`` with ``values``, absent ones (None) left out."""
    return {key: value for key, value in zip(keys, values, strict=True) if value is not None}


# A lock's shapes, built from tuples of values in these orders (a listing builds a hundred).
_STATE_KEYS = _keys(
    SmartlockState,
    "mode",
    "state",
    "trigger",
    "last_action",
    "battery_critical",
    "battery_charging",
    "battery_charge",
    "keypad_battery_critical",
    "door_state",
    "ring_to_open_timer",
    "night_mode",
)
_CONFIG_KEYS = _keys(
    SmartlockConfig,
    "name",
    "latitude",
    "longitude",
    "auto_unlatch",
    "pairing_enabled",
    "button_enabled",
    "led_enabled",
    "timezone_offset",
    "fob_paired",
    "single_lock",
    "advertising_mode",
    "keypad_paired",
    "timezone_id",
    "device_type",
    "timezone",
)
_LOCK_KEYS = _keys(
    Smartlock,
    "smartlock_id",
    "account_id",
    "type",
    "auth_id",
    "name",
    "favorite",
    "config",
    "state",
    "firmware_version",
    "hardware_version",
    "server_state",
    "admin_pin_state",
    "virtual_device",
    "creation_date",
    "update_date",
    "opener",
    "box",
    "smart_door",
    "keyturner",
    "nuki_id",
    "checked_date",
)


def _date(value: datetime | None) -> str | None:
    return None if value is None else format_api_datetime(value)


def smartlock_shape(
    row: models.Smartlock | repo.LockRow,
    device: models.SimulatedLock | repo.DeviceRow | None,
    now: datetime | None = None,
) -> Shape:
    """A lock as the API shows it, from its models or the listing's plain rows; ``now`` for
    the zone's current offset (one moment for a whole listing)."""
    online = device is not None and device.online
    charge = device.battery_charge if device is not None else 0
    state = _zipped(
        _STATE_KEYS,
        (
            2,
            device.state if device is not None else 255,
            device.trigger if device is not None and device.trigger <= 6 else 0,
            device.last_action if device is not None else 0,
            charge <= 20,
            False,
            charge,
            False if row.keypad else None,
            device.door_state if device is not None else 0,
            0,
            False,
        ),
    )
    config = _zipped(
        _CONFIG_KEYS,
        (
            row.name,
            0.0,
            0.0,
            False,
            True,
            True,
            True,
            offset_minutes(row.timezone, now or utcnow()),
            False,
            False,
            0,
            row.keypad,
            nuki_timezone_id(row.timezone),
            row.type,
            row.timezone,
        ),
    )
    kind = row.type
    return _zipped(
        _LOCK_KEYS,
        (
            row.id,
            row.account_id,
            kind,
            row.auth_id,
            row.name,
            row.favorite,
            config,
            state,
            0x030905,
            0x0501,
            0 if online else 4,
            0,
            row.virtual,
            _date(row.created_at),
            _date(row.updated_at),
            kind == 2,
            kind == 1,
            kind == 3,
            kind in (0, 3, 4),
            row.nuki_id,
            _date(row.checked_at),
        ),
    )


def log_shape(row: models.SmartlockLog) -> Shape:
    return shape_dict(
        SmartlockLog,
        id=row.id,
        smartlock_id=row.smartlock_id,
        device_type=0 if row.device_type in (0, 1, 4) else row.device_type,
        account_user_id=row.account_user_id,
        auth_id=row.auth_key,
        name=row.name,
        action=row.action,
        trigger=row.trigger,
        state=row.state,
        auto_unlock=row.auto_unlock,
        date=row.date,
        source=row.source,
        error=row.error,
    )
