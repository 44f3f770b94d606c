"""Nuki's time zone ids (``Smartlock.Config.timezoneId``) and the lock's IANA time zone.

Nuki devices know 46 zones by number (0..45), listed in Nuki's Smart Lock API
(Bluetooth) specification. A Keyhouse lock keeps its IANA zone; its ``timezoneId`` is the
listed zone with the same UTC offsets in January and July (Europe/Vienna → 37 Europe/Berlin).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

NUKI_TIMEZONES: tuple[str, ...] = (
    "Africa/Cairo",
    "Africa/Lagos",
    "Africa/Maputo",
    "Africa/Nairobi",
    "America/Anchorage",
    "America/Argentina/Buenos_Aires",
    "America/Chicago",
    "America/Denver",
    "America/Halifax",
    "America/Los_Angeles",
    "America/Manaus",
    "America/Mexico_City",
    "America/New_York",
    "America/Phoenix",
    "America/Regina",
    "America/Santiago",
    "America/Sao_Paulo",
    "America/St_Johns",
    "Asia/Bangkok",
    "Asia/Dubai",
    "Asia/Hong_Kong",
    "Asia/Jerusalem",
    "Asia/Karachi",
    "Asia/Kathmandu",
    "Asia/Kolkata",
    "Asia/Riyadh",
    "Asia/Seoul",
    "Asia/Shanghai",
    "Asia/Tehran",
    "Asia/Tokyo",
    "Asia/Yangon",
    "Australia/Adelaide",
    "Australia/Brisbane",
    "Australia/Darwin",
    "Australia/Hobart",
    "Australia/Perth",
    "Australia/Sydney",
    "Europe/Berlin",
    "Europe/Helsinki",
    "Europe/Istanbul",
    "Europe/London",
    "Europe/Moscow",
    "Pacific/Auckland",
    "Pacific/Guam",
    "Pacific/Honolulu",
    "Pacific/Pago_Pago",
)

_PROBES = (datetime(2026, 1, 15, 12, tzinfo=UTC), datetime(2026, 7, 15, 12, tzinfo=UTC))


# IANA knows about 600 zone names; a cache this size never evicts a real one.
_ZONES_CACHED = 1024


@lru_cache(maxsize=_ZONES_CACHED)
def zone_info(zone: str) -> ZoneInfo:
    """``ZoneInfo(zone)``, kept: zoneinfo's own cache keeps only 8 zones strongly, and reading a
    zone's tzdata file again costs far more than the lookups that need it."""
    return ZoneInfo(zone)


def _offsets(zone: str) -> tuple[int, ...]:
    info = zone_info(zone)
    return tuple(int(p.astimezone(info).utcoffset().total_seconds()) for p in _PROBES)  # type: ignore[union-attr]


@lru_cache(maxsize=_ZONES_CACHED)
def nuki_timezone_id(zone: str) -> int:
    """The Nuki id of ``zone``, or of the listed zone that keeps the same offsets all year.

    Kept per zone: a zone outside Nuki's list (Europe/Vienna, the default) compares its offsets
    with up to 46 listed zones, and every lock of a listing asks again.
    """
    if zone in NUKI_TIMEZONES:
        return NUKI_TIMEZONES.index(zone)
    wanted = _offsets(zone)
    for index, candidate in enumerate(NUKI_TIMEZONES):
        if _offsets(candidate) == wanted:
            return index
    return NUKI_TIMEZONES.index("Europe/London") if wanted[0] == 0 else 37


def offset_minutes(zone: str, at: datetime) -> int:
    """The zone's offset from UTC at ``at``, in minutes (``timezoneOffset``, deprecated by Nuki)."""
    offset = at.astimezone(zone_info(zone)).utcoffset()
    return int(offset.total_seconds() // 60) if offset else 0
