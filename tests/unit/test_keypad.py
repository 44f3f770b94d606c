"""Tests for keyhouse.rules.keypad."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from keyhouse.rules.keypad import (
    AUTH_NAME_MAX,
    KEYPAD_NAME_MAX,
    MAX_AUTHS_PER_LOCK,
    MAX_KEYPAD_CODES_PER_LOCK,
    check_keypad_code,
)
from keyhouse.rules.violations import RuleViolation


def test_limits() -> None:
    assert (KEYPAD_NAME_MAX, AUTH_NAME_MAX) == (20, 32)
    assert (MAX_AUTHS_PER_LOCK, MAX_KEYPAD_CODES_PER_LOCK) == (200, 100)


@pytest.mark.parametrize("code", [111111, 999999, 374829, 213456, 131313, 112345])
def test_valid_codes(code: int) -> None:
    assert check_keypad_code(code) is None


@pytest.mark.parametrize(
    ("code", "rule"),
    [
        (12345, "six_digits"),
        (1234567, "six_digits"),
        (0, "six_digits"),
        (-123456, "six_digits"),
        (-12345, "six_digits"),
        (123450, "digits_1_to_9"),
        (100000, "digits_1_to_9"),
        (120000, "digits_1_to_9"),
        (123456, "forbidden"),
        (129999, "forbidden"),
        (121212, "forbidden"),
    ],
)
def test_invalid_codes(code: int, rule: str) -> None:
    with pytest.raises(RuleViolation) as info:
        check_keypad_code(code)
    assert info.value.field == "code"
    assert info.value.rule == rule
    assert str(code) in info.value.message
    assert str(info.value) == info.value.message


def test_message_for_12_prefix() -> None:
    with pytest.raises(RuleViolation) as info:
        check_keypad_code(123456)
    assert info.value.message.startswith(
        "code 123456 is not valid: a keypad code must not start with 12"
    )


@pytest.mark.parametrize("code", ["123456", 374829.0, True, None])
def test_non_int_is_rejected(code: object) -> None:
    with pytest.raises(RuleViolation) as info:
        check_keypad_code(code)  # type: ignore[arg-type]
    assert (info.value.field, info.value.rule) == ("code", "format")


def oracle(code: int) -> str | None:
    """Independent statement of the rules, on the string, with set logic."""
    text = str(code)
    if len(text) != 6 or not text.isdigit():
        return "six_digits"
    if set(text) & {"0"}:
        return "digits_1_to_9"
    if text[:2] == "12":
        return "forbidden"
    return None


@given(
    st.one_of(
        st.integers(min_value=-2_000_000, max_value=2_000_000),
        st.integers(min_value=100_000, max_value=999_999),
        st.integers(min_value=120_000, max_value=129_999),
    )
)
@example(100_000)
@example(999_999)
@example(99_999)
@example(1_000_000)
def test_check_matches_oracle(code: int) -> None:
    expected = oracle(code)
    if expected is None:
        check_keypad_code(code)
    else:
        with pytest.raises(RuleViolation) as info:
            check_keypad_code(code)
        assert info.value.rule == expected
        assert info.value.field == "code"
