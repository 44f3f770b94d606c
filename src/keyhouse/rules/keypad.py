"""Keypad rules: code format and limits."""

from __future__ import annotations

from keyhouse.rules.violations import RuleViolation

KEYPAD_NAME_MAX = 20
AUTH_NAME_MAX = 32
MAX_AUTHS_PER_LOCK = 200
MAX_KEYPAD_CODES_PER_LOCK = 100

_ALLOWED_DIGITS = frozenset("123456789")


def check_keypad_code(code: int) -> None:
    """Raise RuleViolation unless ``code`` is a valid keypad code.

    Rules, checked in order: exactly 6 digits (``six_digits``), digits 1-9 only
    (``digits_1_to_9``), must not start with 12 (``forbidden``).
    """
    if isinstance(code, bool) or not isinstance(code, int):
        raise RuleViolation(
            "code",
            "format",
            f"code {code!r} is not valid: a keypad code must be a number, e.g. 374829",
        )
    if not 100_000 <= code <= 999_999:
        raise RuleViolation(
            "code",
            "six_digits",
            f"code {code} is not valid: a keypad code must have exactly 6 digits, e.g. 374829",
        )
    text = str(code)
    if not set(text) <= _ALLOWED_DIGITS:
        raise RuleViolation(
            "code",
            "digits_1_to_9",
            f"code {code} is not valid: a keypad code may only use the digits 1 to 9, "
            "so replace every 0",
        )
    if text.startswith("12"):
        raise RuleViolation(
            "code",
            "forbidden",
            f"code {code} is not valid: a keypad code must not start with 12, "
            "so choose different first digits",
        )


def keypad_code_from_text(value: object) -> object:
    """A code sent as a string of digits, checked as written, then as a number.

    ``"000000"`` would become 0 and be reported as ``code 0``, a number nobody typed; a digit
    string that does not survive the conversion unchanged (a leading 0) is judged as written.
    Anything else is returned for the number's own checks.
    """
    if not isinstance(value, str) or not value.strip().isdigit():
        return value
    text = value.strip()
    if text == str(int(text)):
        return int(text)
    if len(text) != 6:
        raise RuleViolation(
            "code",
            "six_digits",
            f"code {text!r} is not valid: a keypad code must have exactly 6 digits, e.g. 374829",
        )
    raise RuleViolation(
        "code",
        "digits_1_to_9",
        f"code {text!r} is not valid: a keypad code may only use the digits 1 to 9, "
        "so replace every 0",
    )


APP_KEY_TYPE, FOB_TYPE, KEYPAD_CODE_TYPE = 0, 2, 13
"""``SmartlockAuth.type`` of an app key, a fob and a keypad code (the types one may create)."""
