"""Parsing and formatting of API date-times (RFC 3339, always UTC on output)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from keyhouse.rules.violations import RuleViolation

_EXAMPLE = "2026-12-01T08:00:00.000Z"
_MAX_SHOWN = 64

_DATETIME_RE = re.compile(
    r"""
    (?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})
    [Tt\ ]
    (?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})
    (?::(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]+))?)?
    (?P<zone>[Zz]|(?P<sign>[+-])(?P<off_hour>[0-9]{2}):(?P<off_minute>[0-9]{2}))?
    """,
    re.VERBOSE | re.ASCII,
)


def _shown(value: object) -> str:
    text = str(value)
    if len(text) > _MAX_SHOWN:
        text = text[:_MAX_SHOWN] + "…"
    return f'"{text}"'


def _bad_format(field: str, value: object, reason: str) -> RuleViolation:
    return RuleViolation(
        field,
        "format",
        f"{field} {_shown(value)} is not a valid date-time: {reason}; "
        f"use RFC 3339 with a time zone, e.g. {_EXAMPLE}",
    )


def parse_api_datetime(value: str, field: str) -> datetime:
    """Parse an RFC 3339 date-time (seconds optional) and return it as aware UTC."""
    if not isinstance(value, str):
        raise _bad_format(field, value, "it is not a text value")
    match = _DATETIME_RE.fullmatch(value)
    if match is None:
        raise _bad_format(field, value, "it does not look like a date and time")
    fraction = match["fraction"] or ""
    try:
        naive = datetime(
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"] or 0),
            int(fraction[:6].ljust(6, "0")),
        )
    except ValueError as exc:
        raise _bad_format(field, value, f"no such date or time ({exc})") from None
    if match["zone"] is None:
        raise RuleViolation(
            field,
            "format",
            f"{field} {_shown(value)} has no time zone: dates are absolute instants in UTC, "
            f"so add Z or an offset such as +01:00, e.g. {_EXAMPLE}",
        )
    if match["sign"] is None:
        return naive.replace(tzinfo=UTC)
    off_hour, off_minute = int(match["off_hour"]), int(match["off_minute"])
    if off_hour > 23 or off_minute > 59:
        raise _bad_format(field, value, "the offset must be between -23:59 and +23:59")
    offset = timedelta(hours=off_hour, minutes=off_minute)
    if match["sign"] == "-":
        offset = -offset
    try:
        return naive.replace(tzinfo=timezone(offset)).astimezone(UTC)
    except OverflowError:
        raise _bad_format(field, value, "it is outside the supported range of years") from None


def format_api_datetime(dt: datetime) -> str:
    """Format as UTC with milliseconds and ``Z``; a naive datetime is taken as UTC."""
    if dt.tzinfo is not UTC:
        dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    # ISO 8601 in C, truncated to milliseconds, "+00:00" spelt "Z".
    return dt.isoformat(timespec="milliseconds")[:-6] + "Z"


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


_DAY_RE = re.compile(r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})", re.ASCII)


def parse_day_or_datetime(value: str, field: str, *, end_of_day: bool = False) -> datetime:
    """An RFC 3339 date-time, or a day ``YYYY-MM-DD`` taken in UTC: its first instant, or with
    ``end_of_day`` its last (so a day given as an upper bound includes the whole day)."""
    match = _DAY_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return parse_api_datetime(value, field)
    try:
        day = datetime(int(match["year"]), int(match["month"]), int(match["day"]), tzinfo=UTC)
    except ValueError as exc:
        raise _bad_format(field, value, f"no such day ({exc})") from None
    if end_of_day:
        return day.replace(hour=23, minute=59, second=59, microsecond=999999)
    return day
