"""The command line's parsers of key options: dates in the lock's zone, week days, windows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from keyhouse.rules.cli_input import (
    key_fields,
    parse_at,
    parse_code,
    parse_date,
    parse_days,
    parse_language,
    parse_time_window,
)

VIENNA = "Europe/Vienna"


def test_from_date_is_local_midnight() -> None:
    assert parse_date("2026-12-01", "--from", VIENNA) == datetime(2026, 11, 30, 23, tzinfo=UTC)


def test_until_date_is_the_end_of_that_local_day() -> None:
    got = parse_date("2027-01-31", "--until", VIENNA, end=True)
    assert got == datetime(2027, 1, 31, 23, tzinfo=UTC)


def test_until_date_in_summer_time() -> None:
    got = parse_date("2026-07-31", "--until", VIENNA, end=True)
    assert got == datetime(2026, 7, 31, 22, tzinfo=UTC)


def test_date_time_without_zone_is_local_and_with_zone_is_kept() -> None:
    assert parse_date("2026-12-01T08:00", "--from", VIENNA) == datetime(2026, 12, 1, 7, tzinfo=UTC)
    assert parse_date("2026-12-01T08:00:00Z", "--from", VIENNA) == datetime(
        2026, 12, 1, 8, tzinfo=UTC
    )


@pytest.mark.parametrize("text", ["tomorrow", "2026-13-01", "01.12.2026", ""])
def test_bad_dates_name_the_option(text: str) -> None:
    with pytest.raises(ValueError, match=r"^--until"):
        parse_date(text, "--until", VIENNA, end=True)


@pytest.mark.parametrize(
    ("text", "mask"),
    [
        ("mon-fri", 124),
        ("sat,sun", 3),
        ("mon,wed-fri", 64 + 16 + 8 + 4),
        ("Mon", 64),
        ("sun", 1),
        ("mon-sun", 127),
        ("monday, friday", 68),
        ("tue-tue", 32),
    ],
)
def test_days(text: str, mask: int) -> None:
    assert parse_days(text) == mask


@pytest.mark.parametrize("text", ["", "fri-mon", "mon,,tue", "funday", "mon-", "1-5"])
def test_bad_days_name_the_option(text: str) -> None:
    with pytest.raises(ValueError, match=r"^--days"):
        parse_days(text)


@pytest.mark.parametrize(
    ("text", "window"),
    [("08:00-18:00", (480, 1080)), ("8-18", (480, 1080)), ("00:00-24:00", (0, 1439))],
)
def test_time_window(text: str, window: tuple[int, int]) -> None:
    assert parse_time_window(text) == window


@pytest.mark.parametrize("text", ["08:00", "18:00-08:00", "08:00-08:00", "25:00-26:00", "a-b"])
def test_bad_time_windows_name_the_option(text: str) -> None:
    with pytest.raises(ValueError, match=r"^--time"):
        parse_time_window(text)


def test_code() -> None:
    assert parse_code("345678") == 345678
    with pytest.raises(ValueError, match=r"^--code"):
        parse_code("34a678")


def test_key_fields_maps_every_option_in_the_locks_time_zone() -> None:
    from datetime import UTC, datetime

    from keyhouse.rules.cli_input import key_fields

    fields = key_fields(
        "Europe/Vienna",
        from_="2026-12-01",
        until="2027-01-31",
        days="mon-fri",
        time_="08:00-18:00",
    )
    assert fields == {
        "allowed_from_date": datetime(2026, 11, 30, 23, tzinfo=UTC),
        "allowed_until_date": datetime(2027, 1, 31, 23, tzinfo=UTC),
        "allowed_week_days": 124,
        "allowed_from_time": 480,
        "allowed_until_time": 1080,
    }
    assert key_fields("Europe/Vienna") == {}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("000000", "--code '000000' is not valid: a keypad code may only use the digits 1 to 9"),
        ("123456", "--code '123456' is not valid: a keypad code must not start with 12"),
        ("34567", "--code '34567' is not valid: a keypad code is exactly 6 digits"),
        ("0345678", "--code '0345678' is not valid: a keypad code is exactly 6 digits"),
    ],
)
def test_codes_are_checked_as_typed(text: str, words: str) -> None:
    """Issue 15.3/15.11: checked before any request, and "000000" is not reported as 0."""
    with pytest.raises(ValueError) as caught:
        parse_code(text)
    assert str(caught.value).startswith(words)


def test_until_before_from_is_refused_in_the_users_words() -> None:
    """Issue 15.8: the dates as typed, not the UTC instants they become."""
    with pytest.raises(ValueError) as caught:
        key_fields(VIENNA, from_="2026-12-01", until="2026-11-01")
    assert str(caught.value).startswith("--until 2026-11-01 is before --from 2026-12-01")
    with pytest.raises(ValueError) as csv_words:
        key_fields(
            VIENNA, from_="2026-12-01", until="2026-11-01", names=("from", "until", "d", "t")
        )
    assert str(csv_words.value).startswith("until 2026-11-01 is before from 2026-12-01")
    assert key_fields(VIENNA, from_="2026-12-01", until="2026-12-01")  # one whole day


def test_at_is_a_moment_in_the_locks_zone() -> None:
    assert parse_at("2026-12-07T09:00", VIENNA) == datetime(2026, 12, 7, 8, tzinfo=UTC)
    assert parse_at("2026-12-07T09:00:00Z", VIENNA) == datetime(2026, 12, 7, 9, tzinfo=UTC)
    with pytest.raises(ValueError) as date_only:
        parse_at("2026-12-07", VIENNA)
    assert str(date_only.value).startswith("--at '2026-12-07' is a date without a time")
    with pytest.raises(ValueError):
        parse_at("monday", VIENNA)


def test_language() -> None:
    assert parse_language("DE") == "de" and parse_language("English") == "en"
    with pytest.raises(ValueError) as caught:
        parse_language("fr")
    assert str(caught.value).startswith("--language 'fr' is not valid")
