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
    """A keypad code as a number, checked as typed: 6 digits 1-9, not starting with 12."""
    value = text.strip()
    if not value.isdigit() or len(value) != 6:
        raise ValueError(
            f"{option} {text!r} is not valid: a keypad code is exactly 6 digits, e.g. 345678"
        )
    if "0" in value:
        raise ValueError(
            f"{option} {text!r} is not valid: a keypad code may only use the digits 1 to 9, "
            "so replace every 0"
        )
    if value.startswith("12"):
        raise ValueError(
            f"{option} {text!r} is not valid: a keypad code must not start with 12, so choose "
            "different first digits"
        )
    return int(value)


LANGUAGES = ("en", "de")
"""The languages invite mail and the guest page are written in."""


def parse_language(text: str, option: str = "--language") -> str:
    """``en`` or ``de`` (any case, also ``English``/``Deutsch``/``German``)."""
    value = text.strip().lower()
    value = {"english": "en", "deutsch": "de", "german": "de"}.get(value, value)
    if value not in LANGUAGES:
        raise ValueError(
            f"{option} {text!r} is not valid: invite mail and the guest page speak "
            f"{' and '.join(LANGUAGES)}; write one of them"
        )
    return value


def parse_at(text: str, timezone: str, option: str = "--at") -> datetime:
    """The moment of a simulated door event: a date and time, local to the lock unless it has
    an offset (or ``Z``). A date alone is refused: no one tries a door at midnight by accident."""
    value = text.strip()
    try:
        date.fromisoformat(value)
    except ValueError:
        pass
    else:
        raise ValueError(
            f"{option} {text!r} is a date without a time: give a date and time, e.g. "
            f"{value}T09:00 (the lock's time, {timezone}) or {value}T09:00:00Z"
        )
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise ValueError(
            f"{option} {text!r} is not a date and time: write e.g. 2026-12-07T09:00 (the lock's "
            f"time, {timezone}) or 2026-12-07T09:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_zone(timezone, option))
    return moment.astimezone(UTC)


def key_fields(
    timezone: str,
    *,
    from_: str | None = None,
    until: str | None = None,
    days: str | None = None,
    time_: str | None = None,
    names: tuple[str, str, str, str] = ("--from", "--until", "--days", "--time"),
) -> dict[str, Any]:
    """The key's time restrictions (SDK field names) from the options' texts, in the lock's
    ``timezone``; a bad value raises ValueError naming its option (``names`` are the options'
    names as the user wrote them, e.g. the CSV's columns), in the words the user typed."""
    from_name, until_name, days_name, time_name = names
    fields: dict[str, Any] = {}
    if from_:
        fields["allowed_from_date"] = parse_date(from_, from_name, timezone)
    if until:
        fields["allowed_until_date"] = parse_date(until, until_name, timezone, end=True)
    if from_ and until and fields["allowed_until_date"] <= fields["allowed_from_date"]:
        same = fields["allowed_until_date"] == fields["allowed_from_date"]
        raise ValueError(
            f"{until_name} {until.strip()} is {'the same moment as' if same else 'before'} "
            f"{from_name} {from_.strip()}: the key's end must come after its start; swap them "
            "or fix one"
        )
    if days:
        fields["allowed_week_days"] = parse_days(days, days_name)
    if time_:
        fields["allowed_from_time"], fields["allowed_until_time"] = parse_time_window(
            time_, time_name
        )
    return fields


def local_day(instant: datetime, timezone: str, *, end: bool = False) -> str:
    """The day (YYYY-MM-DD) an instant falls on in the lock's zone; with ``end``, the last day
    an until-instant includes (an until at local midnight ends the day before)."""
    local = instant.astimezone(_zone(timezone, "the key"))
    if end and local.time() == time(0, 0):
        local -= timedelta(days=1)
    return local.date().isoformat()


def check_date_order(
    timezone: str,
    start: datetime | None,
    end: datetime | None,
    from_: str | None,
    until: str | None,
) -> None:
    """Refuse a change whose window would end before it starts, where one side is the key's
    current value: in the user's words, and the key's side as a day in the lock's zone."""
    if start is None or end is None or end > start:
        return
    if until and not from_:
        raise ValueError(
            f"--until {until.strip()} is before the key's first day, "
            f"{local_day(start, timezone)} ({timezone}): give a later --until, or a --from too"
        )
    if from_ and not until:
        raise ValueError(
            f"--from {from_.strip()} is after the key's last day, "
            f"{local_day(end, timezone, end=True)} ({timezone}): give an earlier --from, or an "
            "--until too"
        )


_DURATION = re.compile(r"^\s*(\d{1,6})\s*(min|h|d|w)\s*$", re.IGNORECASE)
_DURATION_UNITS = {"min": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_expiry(text: str, now: datetime, option: str = "--expires") -> datetime:
    """When a token made ``now`` expires: a duration (``90min``, ``12h``, ``30d``, ``8w``) or a
    date (``2027-01-31``, the end of that day in UTC) or an ISO date-time; it must be later."""
    match = _DURATION.match(text)
    if match:
        amount, unit = int(match.group(1)), match.group(2).lower()
        if amount < 1:
            raise ValueError(f"{option} {text!r}: a token must live at least 1 {unit}")
        at = now + timedelta(**{_DURATION_UNITS[unit]: amount})
    else:
        try:
            at = parse_date(text.strip(), option, "UTC", end=True)
        except ValueError:
            raise ValueError(
                f"{option} {text!r} is neither a duration (e.g. 90min, 12h, 30d, 8w) nor a "
                "date (e.g. 2027-01-31)"
            ) from None
    if at <= now:
        raise ValueError(f"{option} {text!r} is in the past: a token must expire later than now")
    return at
