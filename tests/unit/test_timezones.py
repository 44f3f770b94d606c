"""Tests for keyhouse.rules.timezones: Nuki's zone ids, computed once per zone."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from keyhouse.rules.timezones import NUKI_TIMEZONES, nuki_timezone_id, offset_minutes, zone_info


def test_a_listed_zone_is_its_own_id_and_an_unlisted_one_takes_a_zone_with_its_offsets() -> None:
    assert nuki_timezone_id("Europe/Berlin") == NUKI_TIMEZONES.index("Europe/Berlin")
    assert nuki_timezone_id("Europe/Vienna") == NUKI_TIMEZONES.index("Europe/Berlin")
    assert nuki_timezone_id("Europe/Lisbon") == NUKI_TIMEZONES.index("Europe/London")
    assert nuki_timezone_id("America/Toronto") == NUKI_TIMEZONES.index("America/New_York")


def test_offset_minutes_follows_summer_time() -> None:
    assert offset_minutes("Europe/Vienna", datetime(2026, 1, 15, tzinfo=UTC)) == 60
    assert offset_minutes("Europe/Vienna", datetime(2026, 7, 15, tzinfo=UTC)) == 120


def test_an_unlisted_zone_is_worked_out_once_not_for_every_lock() -> None:
    """A listing of 50 locks in Europe/Vienna asked for its id 50 times; each time it compared
    the offsets of about 38 zones and read their tzdata files again (zoneinfo keeps only 8)."""
    nuki_timezone_id.cache_clear()
    zone_info.cache_clear()
    nuki_timezone_id("Europe/Vienna")
    misses = nuki_timezone_id.cache_info().misses
    zones_read = zone_info.cache_info().misses
    started = time.perf_counter()
    for _ in range(1000):
        assert nuki_timezone_id("Europe/Vienna") == 37
    assert nuki_timezone_id.cache_info().misses == misses
    assert zone_info.cache_info().misses == zones_read
    assert time.perf_counter() - started < 0.05  # uncached: about 2 ms a call, 2 s in all
