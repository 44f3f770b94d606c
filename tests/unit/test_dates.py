"""Tests for keyhouse.rules.dates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyhouse.rules.dates import format_api_datetime, parse_api_datetime, utcnow
from keyhouse.rules.violations import RuleViolation

EIGHT = datetime(2026, 12, 1, 8, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-12-01T08:00:00Z", EIGHT),
        ("2026-12-01T08:00Z", EIGHT),
        ("2026-12-01T08:00:00.000Z", EIGHT),
        ("2026-12-01t08:00:00z", EIGHT),
        ("2026-12-01 08:00:00Z", EIGHT),
        ("2026-12-01T09:00:00+01:00", EIGHT),
        ("2026-12-01T09:00+01:00", EIGHT),
        ("2026-12-01T03:30:00-04:30", EIGHT),
        ("2026-12-01T08:00:00-00:00", EIGHT),
        ("2026-12-01T08:00:00.5Z", EIGHT.replace(microsecond=500_000)),
        ("2026-12-01T08:00:00.123456789Z", EIGHT.replace(microsecond=123_456)),
        ("2026-12-01T08:00:00.1+00:00", EIGHT.replace(microsecond=100_000)),
        ("2026-12-01T00:30:00+01:00", datetime(2026, 11, 30, 23, 30, tzinfo=UTC)),
        ("2028-02-29T12:00:00Z", datetime(2028, 2, 29, 12, tzinfo=UTC)),
    ],
)
def test_parse_valid(value: str, expected: datetime) -> None:
    parsed = parse_api_datetime(value, "allowedFromDate")
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "value",
    [
        "2026-12-01T08:00:00",
        "2026-12-01T08:00",
        "2026-12-01 08:00:00.123",
    ],
)
def test_parse_missing_zone(value: str) -> None:
    with pytest.raises(RuleViolation) as info:
        parse_api_datetime(value, "allowedUntilDate")
    err = info.value
    assert (err.field, err.rule) == ("allowedUntilDate", "format")
    assert value in err.message
    assert "absolute instants in UTC" in err.message
    assert "add Z or an offset" in err.message
    assert "2026-12-01T08:00:00.000Z" in err.message


@pytest.mark.parametrize(
    "value",
    [
        "",
        "tomorrow",
        "2026-12-01",
        "2026-12-01T08Z",
        "2026-12-01T08:00:00.Z",
        "2026-12-01T08:00.5Z",
        "2026-12-01T08:00:00+0100",
        "2026-12-01T08:00:00+01",
        "2026-12-01T08:00:00ZZ",
        "2026-12-01T08:00:00Z ",
        " 2026-12-01T08:00:00Z",
        "2026-12-01T08:00:00Z\n",
        "26-12-01T08:00:00Z",
        "２026-12-01T08:00:00Z",
        "2026-02-30T08:00:00Z",
        "2026-13-01T08:00:00Z",
        "2026-12-01T24:00:00Z",
        "2026-12-01T08:60:00Z",
        "2026-12-31T23:59:60Z",
        "2026-12-01T08:00:00+24:00",
        "2026-12-01T08:00:00+01:60",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
    ],
)
def test_parse_invalid(value: str) -> None:
    with pytest.raises(RuleViolation) as info:
        parse_api_datetime(value, "allowedFromDate")
    err = info.value
    assert (err.field, err.rule) == ("allowedFromDate", "format")
    assert err.message.startswith(f'allowedFromDate "{value}"')
    assert "2026-12-01T08:00:00.000Z" in err.message


def test_parse_impossible_date_message() -> None:
    with pytest.raises(RuleViolation) as info:
        parse_api_datetime("2026-02-30T08:00:00Z", "allowedFromDate")
    assert "not a valid date-time" in info.value.message
    assert "day is out of range" in info.value.message


def test_parse_long_value_is_shortened_in_message() -> None:
    with pytest.raises(RuleViolation) as info:
        parse_api_datetime("x" * 10_000, "allowedFromDate")
    assert len(info.value.message) < 300


def test_parse_non_string() -> None:
    with pytest.raises(RuleViolation) as info:
        parse_api_datetime(1234, "allowedFromDate")  # type: ignore[arg-type]
    assert info.value.rule == "format"


@pytest.mark.parametrize(
    ("dt", "expected"),
    [
        (EIGHT, "2026-12-01T08:00:00.000Z"),
        (datetime(2026, 12, 1, 8, 0, 0), "2026-12-01T08:00:00.000Z"),
        (
            datetime(2026, 12, 1, 9, 0, 0, tzinfo=timezone(timedelta(hours=1))),
            "2026-12-01T08:00:00.000Z",
        ),
        (datetime(2026, 12, 1, 8, 0, 0, 123_999, tzinfo=UTC), "2026-12-01T08:00:00.123Z"),
        (datetime(5, 1, 2, 3, 4, 5, 6_000, tzinfo=UTC), "0005-01-02T03:04:05.006Z"),
    ],
)
def test_format(dt: datetime, expected: str) -> None:
    assert format_api_datetime(dt) == expected


def test_utcnow_is_aware_utc() -> None:
    now = utcnow()
    assert now.utcoffset() == timedelta(0)
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)


utc_datetimes = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)


@given(utc_datetimes)
def test_format_parse_round_trip(dt: datetime) -> None:
    truncated = dt.replace(microsecond=dt.microsecond // 1000 * 1000)
    text = format_api_datetime(dt)
    assert len(text) == 24
    assert parse_api_datetime(text, "f") == truncated
    assert format_api_datetime(parse_api_datetime(text, "f")) == text


@given(utc_datetimes, st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59))
def test_parse_with_offsets(dt: datetime, offset_minutes: int) -> None:
    dt = dt.replace(microsecond=dt.microsecond // 1000 * 1000)
    local = dt.astimezone(timezone(timedelta(minutes=offset_minutes)))
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    text = (
        f"{local.year:04d}-{local.month:02d}-{local.day:02d}T{local.hour:02d}:"
        f"{local.minute:02d}:{local.second:02d}.{local.microsecond // 1000:03d}"
        f"{sign}{hours:02d}:{minutes:02d}"
    )
    assert parse_api_datetime(text, "f") == dt
