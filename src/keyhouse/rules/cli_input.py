"""Pure parsers of the command line's key options: dates, week days, daily time windows.

Every bad input raises ``ValueError`` with one sentence that names the option.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

DAY_BITS: dict[str, int] = {"mon": 64, "tue": 32, "wed": 16, "thu": 8, "fri": 4, "sat": 2, "sun": 1}
_DAY_ORDER = list(DAY_BITS)
_ALIASES = {
    "monday": "mon",
    "tuesday": "tue",
    "tues": "tue",
    "wednesday": "wed",
    "thursday": "thu",
    "thur": "thu",
    "thurs": "thu",
    "friday": "fri",
    "saturday": "sat",
    "sunday": "sun",
}
_TIME = re.compile(r"^(\d{1,2})(?::(\d{2}))?$")


def _zone(timezone: str, option: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except Exception as exc:
        raise ValueError(
            f"{option}: the lock's time zone {timezone!r} is not a known IANA time zone"
        ) from exc


def parse_date(text: str, option: str, timezone: str, *, end: bool = False) -> datetime:
    """An instant in UTC from ``YYYY-MM-DD`` or an ISO date-time, in the lock's ``timezone``.

    A date alone is the start of that day in the lock's zone, or with ``end`` the end of it
    (the next day's 00:00 local), so an until-date includes its whole day. A date-time without
    an offset is local to the lock; one with an offset (or ``Z``) is taken as given.
    """
    value = text.strip()
    zone = _zone(timezone, option)
    try:
        day = date.fromisoformat(value)
    except ValueError:
        day = None
    if day is not None:
        if end:
            day = day + timedelta(days=1)
        return datetime.combine(day, time(0, 0), tzinfo=zone).astimezone(UTC)
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise ValueError(
            f"{option} {text!r} is not a date: use YYYY-MM-DD (e.g. 2026-12-01) or a date and "
            "time such as 2026-12-01T08:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def _day(word: str, option: str, text: str) -> int:
    name = _ALIASES.get(word, word)
    if name not in DAY_BITS:
        raise ValueError(
            f"{option} {text!r} is not valid: {word!r} is not a week day; use mon, tue, wed, "
            "thu, fri, sat, sun in ranges and lists, e.g. mon-fri or sat,sun"
        )
    return _DAY_ORDER.index(name)


def parse_days(text: str, option: str = "--days") -> int:
    """The ``allowedWeekDays`` bitmask (Mon 64 … Sun 1) of e.g. ``mon-fri``, ``mon,wed-fri``."""
    words = text.strip().lower()
    if not words:
        raise ValueError(f"{option} is empty: give week days such as mon-fri or sat,sun")
    if words in ("all", "daily", "every day", "mon-sun"):
        return 127
    mask = 0
    for part in words.split(","):
        part = part.strip()
        if not part:
            raise ValueError(
                f"{option} {text!r} is not valid: it has an empty item; write e.g. mon,wed-fri"
            )
        if "-" in part:
            first, _, last = part.partition("-")
            start, stop = _day(first.strip(), option, text), _day(last.strip(), option, text)
            if start > stop:
                raise ValueError(
                    f"{option} {text!r} is not valid: the range {part!r} runs backwards; "
                    "ranges go from Monday to Sunday, e.g. mon-fri (use sat,sun for a weekend)"
                )
            for index in range(start, stop + 1):
                mask |= DAY_BITS[_DAY_ORDER[index]]
        else:
            mask |= DAY_BITS[_DAY_ORDER[_day(part, option, text)]]
    return mask


def _minutes(value: str, option: str, text: str) -> int:
    match = _TIME.match(value.strip())
    if match is None:
        raise ValueError(
            f"{option} {text!r} is not valid: {value.strip()!r} is not a time; "
            "write HH:MM-HH:MM, e.g. 08:00-18:00"
        )
    hours, minutes = int(match.group(1)), int(match.group(2) or 0)
    if hours == 24 and minutes == 0:
        return 1439  # the end of the day: the last minute the API allows
    if hours > 23 or minutes > 59:
        raise ValueError(
            f"{option} {text!r} is not valid: {value.strip()!r} is not a time of day "
            "(00:00 to 23:59)"
        )
    return hours * 60 + minutes


def parse_time_window(text: str, option: str = "--time") -> tuple[int, int]:
    """``08:00-18:00`` -> ``(480, 1080)``: allowedFromTime and allowedUntilTime in minutes."""
    first, sep, last = text.strip().partition("-")
    if not sep:
        raise ValueError(
            f"{option} {text!r} is not valid: give a daily window as HH:MM-HH:MM, e.g. 08:00-18:00"
        )
    start, stop = _minutes(first, option, text), _minutes(last, option, text)
    if start >= stop:
        raise ValueError(
            f"{option} {text!r} is not valid: the end must be later than the start "
            "(a daily window can't cross midnight)"
        )
    return start, stop


def parse_code(text: str, option: str = "--code") -> int:
    """A keypad code as a number (the server checks its rules)."""
    value = text.strip()
    if not value.isdigit():
        raise ValueError(f"{option} {text!r} is not valid: a keypad code is 6 digits, e.g. 345678")
    return int(value)


def key_fields(
    timezone: str,
    *,
    from_: str | None = None,
    until: str | None = None,
    days: str | None = None,
    time_: str | None = None,
) -> dict[str, Any]:
    """The key's time restrictions (SDK field names) from the options' texts, in the lock's
    ``timezone``; a bad value raises ValueError naming its option."""
    fields: dict[str, Any] = {}
    if from_:
        fields["allowed_from_date"] = parse_date(from_, "--from", timezone)
    if until:
        fields["allowed_until_date"] = parse_date(until, "--until", timezone, end=True)
    if days:
        fields["allowed_week_days"] = parse_days(days, "--days")
    if time_:
        fields["allowed_from_time"], fields["allowed_until_time"] = parse_time_window(
            time_, "--time"
        )
    return fields
