"""Identifiers: Nuki smartlock ids, Nuki device ids and ObjectId-like ids."""

from __future__ import annotations

import itertools
import re
import secrets
from datetime import UTC, datetime

from keyhouse.rules.violations import RuleViolation

_NUKI_ID_RE = re.compile(r"[0-9A-Fa-f]{8}")
_OBJECT_ID_RE = re.compile(r"[0-9A-Fa-f]{24}")

# Process-wide counter for object ids; next() on itertools.count is atomic under the GIL.
_object_id_counter = itertools.count(secrets.randbelow(1 << 24))


def smartlock_id(device_type: int, nuki_id: str) -> int:
    """Return Nuki's smartlock id: ``int(hex(device_type) + nuki_id, 16)``.

    The device type digit(s) are omitted for device type 0.
    """
    if isinstance(device_type, bool) or not isinstance(device_type, int) or device_type < 0:
        raise RuleViolation(
            "deviceType",
            "range",
            f"deviceType {device_type!r} is not valid: a device type must be an integer "
            "of 0 or more, e.g. 4 for a Smart Lock 3.0",
        )
    if not isinstance(nuki_id, str) or not _NUKI_ID_RE.fullmatch(nuki_id):
        raise RuleViolation(
            "nukiId",
            "format",
            f"nukiId {nuki_id!r} is not valid: a Nuki id must be exactly 8 hex digits, "
            "e.g. 42B03074",
        )
    return (device_type << 32) | int(nuki_id, 16)


def split_smartlock_id(smartlock_id: int) -> tuple[int, str]:
    """Split a smartlock id into ``(device_type, nuki_id)``; nuki_id is 8 upper-case hex."""
    if isinstance(smartlock_id, bool) or not isinstance(smartlock_id, int) or smartlock_id < 0:
        raise RuleViolation(
            "smartlockId",
            "range",
            f"smartlockId {smartlock_id!r} is not valid: a smartlock id must be a "
            "non-negative integer, e.g. 18298712180",
        )
    return smartlock_id >> 32, f"{smartlock_id & 0xFFFFFFFF:08X}"


def new_nuki_id() -> str:
    """Return 8 random upper-case hex digits whose first digit is not 0."""
    return f"{0x10000000 + secrets.randbelow(0xF0000000):08X}"


def new_object_id(now: datetime | None = None) -> str:
    """Return a 24-lower-hex MongoDB-ObjectId-like id.

    Layout: 4 bytes big-endian unix seconds, 5 random bytes, 3-byte counter.
    A naive ``now`` is taken as UTC.
    """
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    seconds = int(now.timestamp()) & 0xFFFFFFFF
    counter = next(_object_id_counter) & 0xFFFFFF
    raw = seconds.to_bytes(4, "big") + secrets.token_bytes(5) + counter.to_bytes(3, "big")
    return raw.hex()


def is_object_id(value: str) -> bool:
    """Return True if ``value`` is exactly 24 hex characters (either case)."""
    return isinstance(value, str) and _OBJECT_ID_RE.fullmatch(value) is not None
