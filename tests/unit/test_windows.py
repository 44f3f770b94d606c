"""Tests for keyhouse.rules.windows."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyhouse.rules.violations import RuleViolation
from keyhouse.rules.windows import (
    WEEKDAY_BITS,
    check_restrictions,
    describe_validity,
    is_valid_timezone,
    weekdays_in_mask,
)

NONE: dict[str, Any] = {
    "allowed_from_date": None,
    "allowed_until_date": None,
    "allowed_week_days": None,
    "allowed_from_time": None,
    "allowed_until_time": None,
}


def restrictions(**kwargs: Any) -> dict[str, Any]:
    return {**NONE, **kwargs}


def test_weekday_bits() -> None:
    assert WEEKDAY_BITS == {0: 64, 1: 32, 2: 16, 3: 8, 4: 4, 5: 2, 6: 1}
    # 2026-11-30 is a Monday.
    monday = datetime(2026, 11, 30)
    names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    for offset, bit in zip(range(7), [64, 32, 16, 8, 4, 2, 1], strict=True):
        day = monday + timedelta(days=offset)
        assert WEEKDAY_BITS[day.weekday()] == bit
        assert day.strftime("%a") == names[offset]


@pytest.mark.parametrize(
    ("mask", "days"),
    [
        (0, []),
        (127, [0, 1, 2, 3, 4, 5, 6]),
        (124, [0, 1, 2, 3, 4]),
        (3, [5, 6]),
        (64, [0]),
        (1, [6]),
        (82, [0, 2, 5]),
    ],
)
def test_weekdays_in_mask(mask: int, days: list[int]) -> None:
    assert weekdays_in_mask(mask) == days


@given(st.integers(min_value=0, max_value=127))
def test_weekdays_in_mask_round_trip(mask: int) -> None:
    days = weekdays_in_mask(mask)
    assert days == sorted(days)
    assert sum(WEEKDAY_BITS[d] for d in days) == mask


@pytest.mark.parametrize("mask", [-1, 128])
def test_weekdays_in_mask_rejects_out_of_range(mask: int) -> None:
    with pytest.raises(RuleViolation) as info:
        weekdays_in_mask(mask)
    assert (info.value.field, info.value.rule) == ("allowedWeekDays", "range")


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"allowed_week_days": 0},
        {"allowed_week_days": 127},
        {"allowed_from_time": 0, "allowed_until_time": 0},
        {"allowed_from_time": 0, "allowed_until_time": 1439},
        {"allowed_from_time": 480, "allowed_until_time": 1080},
        {"allowed_from_time": 480, "allowed_until_time": 481},
        {
            "allowed_from_date": datetime(2026, 12, 1, tzinfo=UTC),
            "allowed_until_date": datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC),
        },
        {"allowed_from_date": datetime(2026, 12, 1, tzinfo=UTC)},
        {"allowed_until_date": datetime(2026, 12, 1, tzinfo=UTC)},
    ],
)
def test_check_restrictions_accepts(kwargs: dict[str, Any]) -> None:
    assert check_restrictions(**restrictions(**kwargs)) is None


@pytest.mark.parametrize(
    ("kwargs", "field", "rule", "snippets"),
    [
        ({"allowed_week_days": 128}, "allowedWeekDays", "range", ["128", "0 to 127"]),
        ({"allowed_week_days": -1}, "allowedWeekDays", "range", ["-1"]),
        (
            {"allowed_from_time": 1440, "allowed_until_time": 1080},
            "allowedFromTime",
            "range",
            ["1440", "minutes from midnight", "0 to 1439", "480 = 08:00"],
        ),
        (
            {"allowed_from_time": -1, "allowed_until_time": 1080},
            "allowedFromTime",
            "range",
            ["-1"],
        ),
        (
            {"allowed_from_time": 480, "allowed_until_time": 1440},
            "allowedUntilTime",
            "range",
            ["1440", "minutes from midnight"],
        ),
        (
            {"allowed_from_time": 480},
            "allowedUntilTime",
            "required",
            ["allowedUntilTime", "480"],
        ),
        (
            {"allowed_until_time": 1080},
            "allowedFromTime",
            "required",
            ["allowedFromTime", "1080"],
        ),
        (
            {"allowed_from_time": 1080, "allowed_until_time": 480},
            "allowedUntilTime",
            "order",
            ["480 (08:00)", "1080 (18:00)", "can't cross midnight"],
        ),
        (
            {"allowed_from_time": 480, "allowed_until_time": 480},
            "allowedUntilTime",
            "order",
            ["can't cross midnight"],
        ),
        (
            {"allowed_from_time": 1439, "allowed_until_time": 0},
            "allowedUntilTime",
            "order",
            ["can't cross midnight"],
        ),
        (
            {
                "allowed_from_date": datetime(2027, 1, 31, tzinfo=UTC),
                "allowed_until_date": datetime(2026, 12, 1, tzinfo=UTC),
            },
            "allowedUntilDate",
            "order",
            ["2026-12-01 00:00:00 UTC", "2027-01-31 00:00:00 UTC"],
        ),
        (
            {
                "allowed_from_date": datetime(2026, 12, 1, 8, tzinfo=UTC),
                "allowed_until_date": datetime(2026, 12, 1, 9, tzinfo=timezone(timedelta(hours=1))),
            },
            "allowedUntilDate",
            "order",
            ["allowedFromDate"],
        ),
    ],
)
def test_check_restrictions_rejects(
    kwargs: dict[str, Any], field: str, rule: str, snippets: list[str]
) -> None:
    with pytest.raises(RuleViolation) as info:
        check_restrictions(**restrictions(**kwargs))
    err = info.value
    assert (err.field, err.rule) == (field, rule)
    for snippet in snippets:
        assert snippet in err.message


def test_check_restrictions_naive_dates_are_utc() -> None:
    with pytest.raises(RuleViolation) as info:
        check_restrictions(
            **restrictions(
                allowed_from_date=datetime(2026, 12, 1, 8),
                allowed_until_date=datetime(2026, 12, 1, 8, tzinfo=UTC),
            )
        )
    assert info.value.rule == "order"


@given(
    st.integers(min_value=-5, max_value=1445) | st.none(),
    st.integers(min_value=-5, max_value=1445) | st.none(),
)
def test_check_times_property(from_time: int | None, until_time: int | None) -> None:
    def in_range(value: int | None) -> bool:
        return value is None or 0 <= value <= 1439

    expected_ok = (
        in_range(from_time)
        and in_range(until_time)
        and (from_time is None) == (until_time is None)
        and (from_time is None or from_time < until_time or from_time == until_time == 0)
    )
    try:
        check_restrictions(
            **restrictions(allowed_from_time=from_time, allowed_until_time=until_time)
        )
    except RuleViolation:
        assert not expected_ok
    else:
        assert expected_ok


def describe(timezone: str = "Europe/Vienna", **kwargs: Any) -> str:
    return describe_validity(**restrictions(**kwargs), timezone=timezone)


def test_describe_full_example() -> None:
    text = describe(
        allowed_from_date=datetime(2026, 11, 30, 23, tzinfo=UTC),
        allowed_until_date=datetime(2027, 1, 31, 23, tzinfo=UTC),
        allowed_week_days=124,
        allowed_from_time=480,
        allowed_until_time=1080,
    )
    assert text == "Mon–Fri, 08:00–18:00, 1 Dec 2026 – 31 Jan 2027, Europe/Vienna time"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, "any time, no restrictions"),
        ({"allowed_week_days": 0}, "any time, no restrictions"),
        ({"allowed_week_days": 127}, "any time, no restrictions"),
        ({"allowed_from_time": 0, "allowed_until_time": 0}, "any time, no restrictions"),
        ({"allowed_week_days": 82}, "Mon, Wed, Sat, Europe/Vienna time"),
        ({"allowed_week_days": 3}, "Sat, Sun, Europe/Vienna time"),
        ({"allowed_week_days": 96}, "Mon, Tue, Europe/Vienna time"),
        ({"allowed_week_days": 64}, "Mon, Europe/Vienna time"),
        ({"allowed_week_days": 126}, "Mon–Sat, Europe/Vienna time"),
        ({"allowed_week_days": 63}, "Tue–Sun, Europe/Vienna time"),
        ({"allowed_week_days": 116}, "Mon–Wed, Fri, Europe/Vienna time"),
        ({"allowed_week_days": 119}, "Mon–Wed, Fri–Sun, Europe/Vienna time"),
        ({"allowed_week_days": 107}, "Mon, Tue, Thu, Sat, Sun, Europe/Vienna time"),
        (
            {"allowed_from_time": 0, "allowed_until_time": 1439},
            "00:00–23:59, Europe/Vienna time",
        ),
        (
            {"allowed_from_time": 450, "allowed_until_time": 1005},
            "07:30–16:45, Europe/Vienna time",
        ),
        (
            {"allowed_from_date": datetime(2026, 11, 30, 23, tzinfo=UTC)},
            "from 1 Dec 2026, Europe/Vienna time",
        ),
        (
            {"allowed_until_date": datetime(2027, 1, 31, 23, tzinfo=UTC)},
            "until 31 Jan 2027, Europe/Vienna time",
        ),
        (
            # An end at local midnight names the last whole day: 31 Jan 00:00 ends on 30 Jan.
            {"allowed_until_date": datetime(2027, 1, 30, 23, tzinfo=UTC)},
            "until 30 Jan 2027, Europe/Vienna time",
        ),
        (
            {"allowed_from_date": datetime(2026, 12, 1, 8, 30, tzinfo=UTC)},
            "from 1 Dec 2026 09:30, Europe/Vienna time",
        ),
        (
            # Summer time: UTC+2.
            {
                "allowed_from_date": datetime(2026, 6, 30, 22, tzinfo=UTC),
                "allowed_until_date": datetime(2026, 7, 1, 6, 15, tzinfo=UTC),
            },
            "1 Jul 2026 – 1 Jul 2026 08:15, Europe/Vienna time",
        ),
        (
            # Naive datetimes are UTC.
            {"allowed_from_date": datetime(2026, 11, 30, 23)},
            "from 1 Dec 2026, Europe/Vienna time",
        ),
    ],
)
def test_describe_examples(kwargs: dict[str, Any], expected: str) -> None:
    assert describe(**kwargs) == expected


def test_describe_other_timezones() -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    assert describe("UTC", allowed_from_date=start) == "from 1 Dec 2026, UTC time"
    assert (
        describe("America/New_York", allowed_from_date=start)
        == "from 30 Nov 2026 19:00, America/New_York time"
    )


def test_describe_rejects_bad_timezone() -> None:
    with pytest.raises(RuleViolation) as info:
        describe("Mars/Olympus", allowed_week_days=124)
    assert (info.value.field, info.value.rule) == ("timezone", "format")
    assert "Mars/Olympus" in info.value.message


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Europe/Vienna", True),
        ("UTC", True),
        ("America/New_York", True),
        ("Mars/Olympus", False),
        ("", False),
        ("../etc/passwd", False),
        ("/etc/localtime", False),
        ("Europe/Vienna\x00", False),
        (None, False),
    ],
)
def test_is_valid_timezone(name: str, expected: bool) -> None:
    assert is_valid_timezone(name) is expected


# --- in German --------------------------------------------------------------------------------

VIENNA_WINTER: dict[str, Any] = {
    "allowed_from_date": datetime(2026, 11, 30, 23, tzinfo=UTC),
    "allowed_until_date": datetime(2027, 1, 31, 23, tzinfo=UTC),
    "allowed_week_days": 124,
    "allowed_from_time": 480,
    "allowed_until_time": 1080,
}


def describe_in(language: str | None, timezone: str = "Europe/Vienna", **kwargs: Any) -> str:
    return describe_validity(**restrictions(**kwargs), timezone=timezone, language=language)


def test_describe_full_example_in_german() -> None:
    assert describe_in("de", **VIENNA_WINTER) == (
        "Mo–Fr, 08:00–18:00, 1. Dez. 2026 – 31. Jan. 2027, Zeitzone Europe/Vienna"
    )


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, "jederzeit, ohne Einschränkung"),
        ({"allowed_week_days": 127}, "jederzeit, ohne Einschränkung"),
        ({"allowed_from_time": 0, "allowed_until_time": 0}, "jederzeit, ohne Einschränkung"),
        ({"allowed_week_days": 82}, "Mo, Mi, Sa, Zeitzone Europe/Vienna"),
        ({"allowed_week_days": 119}, "Mo–Mi, Fr–So, Zeitzone Europe/Vienna"),
        ({"allowed_week_days": 3}, "Sa, So, Zeitzone Europe/Vienna"),
        (
            {"allowed_from_time": 450, "allowed_until_time": 1005},
            "07:30–16:45, Zeitzone Europe/Vienna",
        ),
        (
            {"allowed_from_date": datetime(2026, 11, 30, 23, tzinfo=UTC)},
            "ab 1. Dez. 2026, Zeitzone Europe/Vienna",
        ),
        (
            {"allowed_until_date": datetime(2027, 1, 31, 23, tzinfo=UTC)},
            "bis 31. Jan. 2027, Zeitzone Europe/Vienna",
        ),
        (
            {"allowed_from_date": datetime(2026, 3, 1, 8, 30, tzinfo=UTC)},
            "ab 1. März 2026 um 09:30, Zeitzone Europe/Vienna",
        ),
        (
            {
                "allowed_from_date": datetime(2026, 6, 30, 22, tzinfo=UTC),
                "allowed_until_date": datetime(2026, 7, 1, 6, 15, tzinfo=UTC),
            },
            "1. Juli 2026 – 1. Juli 2026 um 08:15, Zeitzone Europe/Vienna",
        ),
        (
            {"allowed_until_date": datetime(2026, 5, 31, 22, tzinfo=UTC)},
            "bis 31. Mai 2026, Zeitzone Europe/Vienna",
        ),
    ],
)
def test_describe_examples_in_german(kwargs: dict[str, Any], expected: str) -> None:
    assert describe_in("de", **kwargs) == expected


def test_german_month_names() -> None:
    months = [
        describe_in("de", "UTC", allowed_from_date=datetime(2026, month, 1, tzinfo=UTC))
        for month in range(1, 13)
    ]
    assert [m.removeprefix("ab 1. ").removesuffix(" 2026, Zeitzone UTC") for m in months] == [
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
    ]


@pytest.mark.parametrize("language", ["en", "fr", "", None, "EN", "deu"])
def test_describe_in_english_unless_german(language: str | None) -> None:
    assert describe_in(language, **VIENNA_WINTER) == (
        "Mon–Fri, 08:00–18:00, 1 Dec 2026 – 31 Jan 2027, Europe/Vienna time"
    )
    assert describe_in(language) == "any time, no restrictions"


@given(
    st.integers(min_value=0, max_value=127),
    st.sampled_from([None, (0, 0), (480, 1080), (0, 1439)]),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
)
def test_german_and_english_describe_the_same_days_times_and_dates(
    mask: int, window: tuple[int, int] | None, start: datetime
) -> None:
    kwargs: dict[str, Any] = {"allowed_week_days": mask, "allowed_from_date": start}
    if window is not None:
        kwargs["allowed_from_time"], kwargs["allowed_until_time"] = window
    english = describe_in("en", "UTC", **kwargs)
    german = describe_in("de", "UTC", **kwargs)
    # The same numbers in the same order: only the words differ.
    numbers = re.compile(r"\d+")
    assert numbers.findall(german) == numbers.findall(english)
    assert german.endswith(", Zeitzone UTC") and english.endswith(", UTC time")
    english_words = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "from", "until", "time"}
    assert not english_words & set(re.findall(r"[A-Za-z]+", german))
