"""Tests for keyhouse.rules.access."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keyhouse.rules.access import Decision, KeyRules, decide
from keyhouse.rules.violations import RuleViolation

VIENNA = "Europe/Vienna"
OPEN = KeyRules(enabled=True, remote_allowed=True)
# 2026-12-07 is a Monday; at 12:00 UTC it is 13:00 in Vienna, the same day.
MONDAY_NOON = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
BITS = {"Mon": 64, "Tue": 32, "Wed": 16, "Thu": 8, "Fri": 4, "Sat": 2, "Sun": 1}


def rules(**kwargs: object) -> KeyRules:
    return replace(OPEN, **kwargs)  # type: ignore[arg-type]


def vienna(*args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(VIENNA))  # type: ignore[misc]


# --- examples -------------------------------------------------------------------------------


def test_no_restrictions_opens() -> None:
    assert decide(OPEN, MONDAY_NOON, VIENNA) == Decision(
        allowed=True, reason="opened: inside the key's window", code="ok"
    )


@pytest.mark.parametrize(
    ("offset", "bit", "name"),
    [
        (0, 64, "Monday"),
        (1, 32, "Tuesday"),
        (2, 16, "Wednesday"),
        (3, 8, "Thursday"),
        (4, 4, "Friday"),
        (5, 2, "Saturday"),
        (6, 1, "Sunday"),
    ],
)
def test_every_weekday_bit(offset: int, bit: int, name: str) -> None:
    day = MONDAY_NOON + timedelta(days=offset)
    assert decide(rules(allowed_week_days=bit), day, VIENNA).allowed
    other = decide(rules(allowed_week_days=127 ^ bit), day, VIENNA)
    assert other.allowed is False
    assert other.code == "weekday"
    assert other.reason == f"refused: {name} is not an allowed day"
    for shifted in range(1, 7):
        later = decide(rules(allowed_week_days=bit), day + timedelta(days=shifted), VIENNA)
        assert later.code == "weekday"


@pytest.mark.parametrize(
    ("hour", "minute", "allowed"),
    [(7, 59, False), (8, 0, True), (17, 59, True), (18, 0, False)],
)
def test_daily_window_edges(hour: int, minute: int, allowed: bool) -> None:
    key = rules(allowed_from_time=480, allowed_until_time=1080)
    decision = decide(key, vienna(2026, 12, 7, hour, minute), VIENNA)
    assert decision.allowed is allowed
    assert decision.code == ("ok" if allowed else "time_of_day")


def test_daily_window_seconds_do_not_matter() -> None:
    key = rules(allowed_from_time=480, allowed_until_time=1080)
    assert decide(key, vienna(2026, 12, 7, 17, 59, 59), VIENNA).allowed
    assert not decide(key, vienna(2026, 12, 7, 7, 59, 59), VIENNA).allowed


def test_time_of_day_reason() -> None:
    key = rules(allowed_from_time=480, allowed_until_time=1080)
    decision = decide(key, vienna(2026, 12, 7, 18, 30), VIENNA)
    assert decision == Decision(
        allowed=False,
        reason="refused: 18:30 is outside the daily window 08:00–18:00 (Europe/Vienna time)",
        code="time_of_day",
    )


def test_midnight_in_utc_vs_local() -> None:
    at = datetime(2026, 12, 7, 23, 30, tzinfo=UTC)  # Tuesday 00:30 in Vienna
    monday_only = decide(rules(allowed_week_days=64), at, VIENNA)
    assert monday_only.code == "weekday"
    assert monday_only.reason == "refused: Tuesday is not an allowed day"
    assert decide(rules(allowed_week_days=32), at, VIENNA).allowed
    # In UTC itself it is still Monday.
    assert decide(rules(allowed_week_days=64), at, "UTC").allowed
    # The daily window is local too: 00:30 in Vienna is inside 00:00–01:00, 23:30 UTC is not.
    key = rules(allowed_from_time=0, allowed_until_time=60)
    assert decide(key, at, VIENNA).allowed
    assert not decide(key, at, "UTC").allowed


@pytest.mark.parametrize(
    ("utc_hour", "allowed"),
    [(6, True), (7, False), (5, False)],
)
def test_dst_spring_forward_vienna(utc_hour: int, allowed: bool) -> None:
    # 2026-03-29: clocks go 02:00 -> 03:00; 08:30 local is 06:30 UTC (CEST, +02:00).
    key = rules(allowed_from_time=480, allowed_until_time=540)
    at = datetime(2026, 3, 29, utc_hour, 30, tzinfo=UTC)
    assert decide(key, at, VIENNA).allowed is allowed


@pytest.mark.parametrize(
    ("utc_hour", "allowed"),
    [(7, True), (6, False), (8, False)],
)
def test_dst_fall_back_vienna(utc_hour: int, allowed: bool) -> None:
    # 2026-10-25: clocks go 03:00 -> 02:00; 08:30 local is 07:30 UTC (CET, +01:00).
    key = rules(allowed_from_time=480, allowed_until_time=540)
    at = datetime(2026, 10, 25, utc_hour, 30, tzinfo=UTC)
    assert decide(key, at, VIENNA).allowed is allowed


def test_dst_day_before_and_after_follow_the_offset() -> None:
    key = rules(allowed_from_time=480, allowed_until_time=540)
    assert decide(key, datetime(2026, 3, 28, 7, 30, tzinfo=UTC), VIENNA).allowed
    assert decide(key, datetime(2026, 3, 30, 6, 30, tzinfo=UTC), VIENNA).allowed
    assert decide(key, datetime(2026, 10, 24, 6, 30, tzinfo=UTC), VIENNA).allowed
    assert decide(key, datetime(2026, 10, 26, 7, 30, tzinfo=UTC), VIENNA).allowed


def test_zone_west_of_utc() -> None:
    # 2026-12-08T03:00Z is Tuesday in UTC but Monday 22:00 in New York (EST, -05:00).
    at = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)
    ny = "America/New_York"
    assert decide(rules(allowed_week_days=64), at, ny).allowed
    assert decide(rules(allowed_week_days=32), at, ny).code == "weekday"
    assert decide(rules(allowed_week_days=32), at, "UTC").allowed
    evening = rules(allowed_from_time=21 * 60, allowed_until_time=23 * 60)
    assert decide(evening, at, ny).allowed
    assert decide(evening, at, "UTC").code == "time_of_day"


def test_date_bounds_are_exact() -> None:
    start = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    end = datetime(2026, 12, 31, 8, 0, tzinfo=UTC)
    key = rules(allowed_from_date=start, allowed_until_date=end)
    assert decide(key, start, VIENNA).allowed
    early = decide(key, start - timedelta(microseconds=1), VIENNA)
    assert early == Decision(
        allowed=False,
        reason="refused: before the key's validity starts (2026-12-01 09:00 Europe/Vienna)",
        code="not_yet_valid",
    )
    assert decide(key, end - timedelta(microseconds=1), VIENNA).allowed
    late = decide(key, end, VIENNA)
    assert late.code == "expired"
    assert late.allowed is False
    assert "2026-12-31 09:00 Europe/Vienna" in late.reason


def test_naive_datetimes_are_utc() -> None:
    start = datetime(2026, 12, 1, 8, 0)
    key = rules(allowed_from_date=start, allowed_week_days=2)  # Saturday only
    assert decide(key, start, VIENNA).code == "weekday"  # Tuesday 09:00 Vienna
    assert decide(key, datetime(2026, 12, 1, 7, 59), VIENNA).code == "not_yet_valid"
    assert decide(key, datetime(2026, 12, 5, 22, 59), VIENNA).allowed  # Sat 23:59 Vienna
    assert decide(key, datetime(2026, 12, 5, 23, 0), VIENNA).code == "weekday"


def test_disabled() -> None:
    decision = decide(rules(enabled=False), MONDAY_NOON, VIENNA)
    assert decision == Decision(
        allowed=False, reason="refused: the key is disabled", code="disabled"
    )
    # Disabled wins over every other refusal.
    everything = rules(
        enabled=False,
        remote_allowed=False,
        allowed_from_date=MONDAY_NOON + timedelta(days=1),
        allowed_week_days=1,
    )
    assert decide(everything, MONDAY_NOON, VIENNA, remote=True).code == "disabled"


def test_remote() -> None:
    local_only = rules(remote_allowed=False)
    assert decide(local_only, MONDAY_NOON, VIENNA).allowed
    assert decide(local_only, MONDAY_NOON, VIENNA, remote=False).allowed
    assert decide(local_only, MONDAY_NOON, VIENNA, remote=True) == Decision(
        allowed=False,
        reason="refused: remote use is not allowed for this key",
        code="remote_not_allowed",
    )
    assert decide(rules(remote_allowed=True), MONDAY_NOON, VIENNA, remote=True).allowed


def test_order_of_checks() -> None:
    key = rules(
        remote_allowed=False,
        allowed_from_date=datetime(2026, 12, 10, tzinfo=UTC),
        allowed_until_date=datetime(2026, 12, 20, tzinfo=UTC),
        allowed_week_days=64,
        allowed_from_time=480,
        allowed_until_time=540,
    )
    sunday_night = datetime(2026, 12, 6, 22, 0, tzinfo=UTC)
    assert decide(key, sunday_night, VIENNA, remote=True).code == "remote_not_allowed"
    assert decide(key, sunday_night, VIENNA).code == "not_yet_valid"
    assert decide(key, datetime(2026, 12, 27, 22, 0, tzinfo=UTC), VIENNA).code == "expired"
    assert decide(key, datetime(2026, 12, 13, 22, 0, tzinfo=UTC), VIENNA).code == "weekday"
    assert decide(key, datetime(2026, 12, 14, 22, 0, tzinfo=UTC), VIENNA).code == "time_of_day"
    assert decide(key, datetime(2026, 12, 14, 7, 0, tzinfo=UTC), VIENNA).code == "ok"


@pytest.mark.parametrize(("start", "end"), [(None, None), (0, 0)])
def test_no_daily_window(start: int | None, end: int | None) -> None:
    key = rules(allowed_from_time=start, allowed_until_time=end)
    for minute in range(0, 1440, 7):
        assert decide(key, vienna(2026, 12, 7, minute // 60, minute % 60), VIENNA).allowed


def test_lone_times_run_from_or_to_midnight() -> None:
    assert decide(rules(allowed_from_time=600), vienna(2026, 12, 7, 23, 59), VIENNA).allowed
    assert not decide(rules(allowed_from_time=600), vienna(2026, 12, 7, 9, 59), VIENNA).allowed
    assert decide(rules(allowed_until_time=600), vienna(2026, 12, 7, 0, 0), VIENNA).allowed
    assert not decide(rules(allowed_until_time=600), vienna(2026, 12, 7, 10, 0), VIENNA).allowed


@pytest.mark.parametrize("mask", [None, 0, 127])
def test_every_day_masks(mask: int | None) -> None:
    for offset in range(7):
        at = MONDAY_NOON + timedelta(days=offset)
        assert decide(rules(allowed_week_days=mask), at, VIENNA).allowed


def test_bad_timezone() -> None:
    with pytest.raises(RuleViolation) as info:
        decide(OPEN, MONDAY_NOON, "Mars/Olympus")
    assert info.value.field == "timezone"


def test_from_payload_every_field() -> None:
    key = KeyRules.from_payload(
        {
            "enabled": False,
            "remoteAllowed": True,
            "allowedFromDate": "2026-12-01T08:00:00.000Z",
            "allowedUntilDate": "2027-02-01T00:00:00+01:00",
            "allowedWeekDays": 124,
            "allowedFromTime": 480,
            "allowedUntilTime": 1080,
        }
    )
    assert key == KeyRules(
        enabled=False,
        remote_allowed=True,
        allowed_from_date=datetime(2026, 12, 1, 8, 0, tzinfo=UTC),
        allowed_until_date=datetime(2027, 1, 31, 23, 0, tzinfo=UTC),
        allowed_week_days=124,
        allowed_from_time=480,
        allowed_until_time=1080,
    )
    assert key.allowed_from_date is not None
    assert key.allowed_from_date.tzinfo is not None


def test_from_payload_empty() -> None:
    assert KeyRules.from_payload({}) == KeyRules(enabled=True, remote_allowed=False)
    assert KeyRules.from_payload({"enabled": None, "allowedFromDate": None}) == KeyRules(
        enabled=True, remote_allowed=False
    )


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"enabled": "false"}, "enabled"),
        ({"remoteAllowed": 1}, "remoteAllowed"),
        ({"allowedWeekDays": "124"}, "allowedWeekDays"),
        ({"allowedFromTime": True}, "allowedFromTime"),
        ({"allowedUntilTime": 10.5}, "allowedUntilTime"),
        ({"allowedFromDate": "2026-12-01T08:00:00"}, "allowedFromDate"),
        ({"allowedUntilDate": "tomorrow"}, "allowedUntilDate"),
    ],
)
def test_from_payload_rejects_bad_values(payload: dict[str, object], field: str) -> None:
    with pytest.raises(RuleViolation) as info:
        KeyRules.from_payload(payload)
    assert info.value.field == field


# --- properties -----------------------------------------------------------------------------

ZONES = [
    "Europe/Vienna",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Sydney",
    "UTC",
    "Pacific/Auckland",
]

instants = st.datetimes(
    min_value=datetime(2020, 1, 1),
    max_value=datetime(2035, 12, 31, 23, 59, 59),
    timezones=st.just(UTC),
)


@st.composite
def windows(draw: st.DrawFn, minute: int) -> tuple[int | None, int | None]:
    """A daily window; ``minute`` (the local minute of the instant) makes edges likely."""
    kind = draw(st.sampled_from(["none", "zero", "window", "from", "until", "edge"]))
    if kind == "none":
        return None, None
    if kind == "zero":
        return 0, 0
    if kind == "from":
        return draw(st.integers(0, 1439)), None
    if kind == "until":
        return None, draw(st.integers(1, 1439))
    if kind == "edge":
        edges = [(minute, None), (None, max(minute, 1)), (minute, min(minute + 1, 1439))]
        if minute > 0:
            edges += [(minute - 1, minute), (0, minute)]
        return draw(st.sampled_from(edges))
    start = draw(st.integers(0, 1438))
    return start, draw(st.integers(start + 1, 1439))


@st.composite
def key_rules(draw: st.DrawFn, at: datetime, zone: str) -> KeyRules:
    def bound() -> datetime | None:
        return draw(
            st.one_of(
                st.none(),
                st.none(),
                instants,
                st.just(at),
                st.integers(-3 * 86400, 3 * 86400).map(lambda s: at + timedelta(seconds=s)),
            )
        )

    local = at.astimezone(ZoneInfo(zone))
    start, end = draw(windows(local.hour * 60 + local.minute))
    return KeyRules(
        enabled=draw(st.sampled_from([True, True, True, False])),
        remote_allowed=draw(st.booleans()),
        allowed_from_date=bound(),
        allowed_until_date=bound(),
        allowed_week_days=draw(st.one_of(st.none(), st.just(127), st.integers(0, 127))),
        allowed_from_time=start,
        allowed_until_time=end,
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[KeyRules, datetime, str, bool]:
    at = draw(instants)
    zone = draw(st.sampled_from(ZONES))
    return draw(key_rules(at, zone)), at, zone, draw(st.booleans())


def _clock(minutes: int) -> time:
    return time(minutes // 60, minutes % 60)


def oracle(key: KeyRules, at: datetime, zone: str, remote: bool) -> bool:
    """An independent reading of the rules, written differently from decide()."""
    if not key.enabled or (remote and not key.remote_allowed):
        return False
    if key.allowed_from_date and at < key.allowed_from_date:
        return False
    if key.allowed_until_date and not at < key.allowed_until_date:
        return False
    here = at.astimezone(ZoneInfo(zone))
    days = key.allowed_week_days
    if days not in (None, 0, 127) and not BITS[here.strftime("%a")] & days:
        return False
    wall = here.time().replace(second=0, microsecond=0)
    start, end = key.allowed_from_time, key.allowed_until_time
    if (start, end) in {(None, None), (0, 0)}:
        return True
    if start is not None and wall < _clock(start):
        return False
    return end is None or wall < _clock(end)


@settings(max_examples=500)
@given(cases())
def test_decide_matches_oracle(case: tuple[KeyRules, datetime, str, bool]) -> None:
    key, at, zone, remote = case
    decision = decide(key, at, zone, remote=remote)
    assert decision.allowed is oracle(key, at, zone, remote)
    assert (decision.code == "ok") is decision.allowed
    assert decision.reason.startswith("opened: " if decision.allowed else "refused: ")


@given(cases())
def test_naive_at_is_utc(case: tuple[KeyRules, datetime, str, bool]) -> None:
    key, at, zone, remote = case
    naive = at.replace(tzinfo=None)
    assert decide(key, naive, zone, remote=remote) == decide(key, at, zone, remote=remote)


@given(cases())
def test_removing_restrictions_never_refuses(case: tuple[KeyRules, datetime, str, bool]) -> None:
    key, at, zone, remote = case
    if not decide(key, at, zone, remote=remote).allowed:
        return
    unrestricted = replace(
        key,
        allowed_from_date=None,
        allowed_until_date=None,
        allowed_week_days=None,
        allowed_from_time=None,
        allowed_until_time=None,
    )
    assert decide(unrestricted, at, zone, remote=remote).allowed
    for field in ("allowed_from_date", "allowed_until_date", "allowed_week_days"):
        assert decide(replace(key, **{field: None}), at, zone, remote=remote).allowed
    no_window = replace(key, allowed_from_time=None, allowed_until_time=None)
    assert decide(no_window, at, zone, remote=remote).allowed
    assert decide(replace(key, remote_allowed=True), at, zone, remote=remote).allowed
