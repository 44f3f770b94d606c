"""Time-restriction rules of a key: week days, daily window and validity dates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from keyhouse.rules.violations import RuleViolation

WEEKDAY_BITS: dict[int, int] = {0: 64, 1: 32, 2: 16, 3: 8, 4: 4, 5: 2, 6: 1}
"""Python ``weekday()`` number (0 = Monday) to its bit in ``allowedWeekDays``."""

ALL_WEEK_DAYS = 127
LAST_MINUTE = 1439


@dataclass(frozen=True)
class _Words:
    """How one language writes a key's validity (see ``describe_validity``)."""

    days: tuple[str, ...]  # Monday first
    months: tuple[str, ...]
    date: str  # {day} {month} {year}
    date_time: str  # {date} {time}: a date that does not start at midnight
    starting: str  # an open end: "from …"
    ending: str  # "until …"
    zone: str  # the lock's time zone
    any_time: str  # no restrictions at all


_WORDS: dict[str, _Words] = {
    "en": _Words(
        days=("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
        months=("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        date="{day} {month} {year}",
        date_time="{date} {time}",
        starting="from {}",
        ending="until {}",
        zone="{} time",
        any_time="any time, no restrictions",
    ),
    "de": _Words(
        days=("Mo", "Di", "Mi", "Do", "Fr", "Sa", "So"),
        months=(
            "Jan.",
            "Feb.",
            "März",
            "Apr.",
            "Mai",
            "Juni",
            "Juli",
            "Aug.",
            "Sept.",
            "Okt.",
            "Nov.",
            "Dez.",
        ),
        date="{day}. {month} {year}",
        date_time="{date} um {time}",
        starting="ab {}",
        ending="bis {}",
        zone="Zeitzone {}",
        any_time="jederzeit, ohne Einschränkung",
    ),
}
"""Languages ``describe_validity`` speaks; any other gets English."""


def _check_week_days(mask: int) -> None:
    if isinstance(mask, bool) or not isinstance(mask, int) or not 0 <= mask <= ALL_WEEK_DAYS:
        raise RuleViolation(
            "allowedWeekDays",
            "range",
            f"allowedWeekDays {mask!r} is not valid: it is a bitmask from 0 to 127 "
            "(Mon 64, Tue 32, Wed 16, Thu 8, Fri 4, Sat 2, Sun 1), e.g. 124 for Mon–Fri",
        )


def weekdays_in_mask(mask: int) -> list[int]:
    """Return the Python weekday numbers set in ``mask``, Monday first."""
    _check_week_days(mask)
    return [day for day, bit in WEEKDAY_BITS.items() if mask & bit]


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _check_time(field: str, minutes: int) -> None:
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 0 <= minutes <= LAST_MINUTE:
        raise RuleViolation(
            field,
            "range",
            f"{field} {minutes!r} is not valid: it is minutes from midnight and must be "
            "from 0 to 1439, e.g. 480 = 08:00",
        )


def _as_utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _utc_text(dt: datetime) -> str:
    dt = _as_utc(dt)
    return f"{dt:%Y-%m-%d %H:%M:%S} UTC"


def check_restrictions(
    *,
    allowed_from_date: datetime | None,
    allowed_until_date: datetime | None,
    allowed_week_days: int | None,
    allowed_from_time: int | None,
    allowed_until_time: int | None,
) -> None:
    """Raise RuleViolation if the time restrictions of a key are inconsistent.

    Naive datetimes are taken as UTC. Times 0/0 mean "no daily restriction".
    """
    if allowed_week_days is not None:
        _check_week_days(allowed_week_days)
    if allowed_from_time is not None:
        _check_time("allowedFromTime", allowed_from_time)
    if allowed_until_time is not None:
        _check_time("allowedUntilTime", allowed_until_time)
    if allowed_from_time is not None and allowed_until_time is None:
        raise RuleViolation(
            "allowedUntilTime",
            "required",
            f"allowedUntilTime is missing while allowedFromTime is {allowed_from_time}: "
            "set both (minutes from midnight, e.g. 1080 = 18:00) or leave both out",
        )
    if allowed_until_time is not None and allowed_from_time is None:
        raise RuleViolation(
            "allowedFromTime",
            "required",
            f"allowedFromTime is missing while allowedUntilTime is {allowed_until_time}: "
            "set both (minutes from midnight, e.g. 480 = 08:00) or leave both out",
        )
    if allowed_from_time is not None and allowed_until_time is not None:
        both_zero = allowed_from_time == 0 and allowed_until_time == 0
        if allowed_from_time > allowed_until_time or (
            allowed_from_time == allowed_until_time and not both_zero
        ):
            raise RuleViolation(
                "allowedUntilTime",
                "order",
                f"allowedUntilTime {allowed_until_time} ({_hhmm(allowed_until_time)}) is not "
                f"after allowedFromTime {allowed_from_time} ({_hhmm(allowed_from_time)}): "
                "a daily window can't cross midnight, so make the until time later than the "
                "from time, or set both to 0 for no daily restriction",
            )
    if (
        allowed_from_date is not None
        and allowed_until_date is not None
        and _as_utc(allowed_from_date) >= _as_utc(allowed_until_date)
    ):
        raise RuleViolation(
            "allowedUntilDate",
            "order",
            f"allowedUntilDate {_utc_text(allowed_until_date)} is not after allowedFromDate "
            f"{_utc_text(allowed_from_date)}: make the until date later than the from date",
        )


def _days_text(mask: int, words: _Words) -> str:
    days = weekdays_in_mask(mask)
    runs: list[list[int]] = []
    for day in days:
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts: list[str] = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{words.days[run[0]]}–{words.days[run[-1]]}")
        else:
            parts.extend(words.days[day] for day in run)
    return ", ".join(parts)


def _local_date_text(dt: datetime, zone: ZoneInfo, words: _Words, *, end: bool = False) -> str:
    """The date in the lock's zone; an end at local midnight names the last whole day."""
    local = _as_utc(dt).astimezone(zone)
    at_midnight = (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0)
    if end and at_midnight:
        local = local - timedelta(days=1)
    text = words.date.format(day=local.day, month=words.months[local.month - 1], year=local.year)
    if not at_midnight:
        text = words.date_time.format(date=text, time=f"{local.hour:02d}:{local.minute:02d}")
    return text


def describe_validity(
    *,
    allowed_from_date: datetime | None,
    allowed_until_date: datetime | None,
    allowed_week_days: int | None,
    allowed_from_time: int | None,
    allowed_until_time: int | None,
    timezone: str,
    language: str | None = "en",
) -> str:
    """Describe a key's time restrictions in plain words, in the lock's time zone.

    E.g. ``Mon–Fri, 08:00–18:00, 1 Dec 2026 – 31 Jan 2027, Europe/Vienna time``. The end is
    inclusive in words: an until-date at local midnight (2027-02-01T00:00 in Vienna) names the
    last whole day it allows (31 Jan 2027). ``language`` "de" gives German (``Mo–Fr,
    08:00–18:00, 1. Dez. 2026 – 31. Jan. 2027, Zeitzone Europe/Vienna``); any other, English.
    """
    words = _WORDS.get(language or "en", _WORDS["en"])
    if not is_valid_timezone(timezone):
        raise RuleViolation(
            "timezone",
            "format",
            f"timezone {timezone!r} is not valid: use an IANA time zone name, e.g. Europe/Vienna",
        )
    zone = ZoneInfo(timezone)
    parts: list[str] = []
    if allowed_week_days not in (None, 0, ALL_WEEK_DAYS):
        parts.append(_days_text(allowed_week_days, words))
    if allowed_from_time is not None or allowed_until_time is not None:
        if allowed_from_time is None:
            parts.append(words.ending.format(_hhmm(allowed_until_time)))
        elif allowed_until_time is None:
            parts.append(words.starting.format(_hhmm(allowed_from_time)))
        elif (allowed_from_time, allowed_until_time) != (0, 0):
            parts.append(f"{_hhmm(allowed_from_time)}–{_hhmm(allowed_until_time)}")
    if allowed_from_date is not None and allowed_until_date is not None:
        parts.append(
            f"{_local_date_text(allowed_from_date, zone, words)} – "
            f"{_local_date_text(allowed_until_date, zone, words, end=True)}"
        )
    elif allowed_from_date is not None:
        parts.append(words.starting.format(_local_date_text(allowed_from_date, zone, words)))
    elif allowed_until_date is not None:
        parts.append(
            words.ending.format(_local_date_text(allowed_until_date, zone, words, end=True))
        )
    if not parts:
        return words.any_time
    parts.append(words.zone.format(timezone))
    return ", ".join(parts)


def is_valid_timezone(name: str) -> bool:
    """Return True if ``name`` is an IANA time zone known to zoneinfo."""
    try:
        ZoneInfo(name)
    except Exception:
        return False
    return True
