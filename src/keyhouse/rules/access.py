"""The access decision: does this key open the door at this instant?

Validity dates are absolute instants (UTC); week days and the daily window are read in the
lock's local time, so across a DST change the window follows the local wall clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from keyhouse.rules.dates import parse_api_datetime
from keyhouse.rules.violations import RuleViolation
from keyhouse.rules.windows import ALL_WEEK_DAYS, WEEKDAY_BITS, is_valid_timezone

MINUTES_PER_DAY = 1440

_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _as_utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _payload_bool(data: Mapping[str, Any], field: str, default: bool) -> bool:
    value = data.get(field)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise RuleViolation(
            field, "type", f"{field} {value!r} is not valid: use true or false, e.g. true"
        )
    return value


def _payload_int(data: Mapping[str, Any], field: str, example: str) -> int | None:
    value = data.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuleViolation(
            field, "type", f"{field} {value!r} is not valid: use a whole number, e.g. {example}"
        )
    return value


def _payload_date(data: Mapping[str, Any], field: str) -> datetime | None:
    value = data.get(field)
    return None if value is None else parse_api_datetime(value, field)


@dataclass(frozen=True)
class KeyRules:
    """A key's access rules; dates are UTC instants (naive = UTC), ends are exclusive."""

    enabled: bool
    remote_allowed: bool
    allowed_from_date: datetime | None = None
    allowed_until_date: datetime | None = None
    allowed_week_days: int | None = None
    allowed_from_time: int | None = None
    allowed_until_time: int | None = None

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> KeyRules:
        """Build rules from a camelCase API dict; missing keys mean no restriction.

        A missing ``enabled`` is True, a missing ``remoteAllowed`` is False.
        """
        return cls(
            enabled=_payload_bool(data, "enabled", True),
            remote_allowed=_payload_bool(data, "remoteAllowed", False),
            allowed_from_date=_payload_date(data, "allowedFromDate"),
            allowed_until_date=_payload_date(data, "allowedUntilDate"),
            allowed_week_days=_payload_int(data, "allowedWeekDays", "124 for Mon–Fri"),
            allowed_from_time=_payload_int(data, "allowedFromTime", "480 for 08:00"),
            allowed_until_time=_payload_int(data, "allowedUntilTime", "1080 for 18:00"),
        )


@dataclass(frozen=True)
class Decision:
    """The outcome: ``allowed``, one plain sentence and a machine ``code``."""

    allowed: bool
    reason: str
    code: str


def _daily_window(rules: KeyRules) -> tuple[int, int] | None:
    """The daily window as [from, until) minutes, or None for no daily restriction.

    A lone from-time runs to midnight, a lone until-time starts at midnight.
    """
    start, end = rules.allowed_from_time, rules.allowed_until_time
    if start is None and end is None:
        return None
    if start == 0 and end == 0:
        return None
    return (0 if start is None else start, MINUTES_PER_DAY if end is None else end)


def _refused(code: str, reason: str) -> Decision:
    return Decision(allowed=False, reason=f"refused: {reason}", code=code)


def decide(rules: KeyRules, at: datetime, timezone: str, *, remote: bool = False) -> Decision:
    """Decide whether ``rules`` let the key open at instant ``at`` (naive = UTC).

    ``timezone`` is the lock's IANA zone, used for week days and the daily window.
    """
    if not is_valid_timezone(timezone):
        raise RuleViolation(
            "timezone",
            "format",
            f"timezone {timezone!r} is not valid: use an IANA time zone name, e.g. Europe/Vienna",
        )
    zone = ZoneInfo(timezone)
    at = _as_utc(at)

    def local_text(dt: datetime) -> str:
        return f"{_as_utc(dt).astimezone(zone):%Y-%m-%d %H:%M} {timezone}"

    if not rules.enabled:
        return _refused("disabled", "the key is disabled")
    if remote and not rules.remote_allowed:
        return _refused("remote_not_allowed", "remote use is not allowed for this key")
    if rules.allowed_from_date is not None and at < _as_utc(rules.allowed_from_date):
        return _refused(
            "not_yet_valid",
            f"before the key's validity starts ({local_text(rules.allowed_from_date)})",
        )
    if rules.allowed_until_date is not None and at >= _as_utc(rules.allowed_until_date):
        return _refused(
            "expired", f"the key's validity ended ({local_text(rules.allowed_until_date)})"
        )
    local = at.astimezone(zone)
    mask = rules.allowed_week_days or ALL_WEEK_DAYS
    if not mask & WEEKDAY_BITS[local.weekday()]:
        return _refused("weekday", f"{_DAY_NAMES[local.weekday()]} is not an allowed day")
    window = _daily_window(rules)
    minute = local.hour * 60 + local.minute
    if window is not None and not window[0] <= minute < window[1]:
        return _refused(
            "time_of_day",
            f"{_hhmm(minute)} is outside the daily window "
            f"{_hhmm(window[0])}–{_hhmm(window[1])} ({timezone} time)",
        )
    return Decision(allowed=True, reason="opened: inside the key's window", code="ok")
