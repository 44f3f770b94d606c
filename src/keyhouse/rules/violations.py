"""The error raised when a value breaks a domain rule."""

from __future__ import annotations


class RuleViolation(ValueError):
    """A value broke a domain rule.

    ``field`` names the offending field, ``rule`` is a short machine code
    (e.g. ``"range"``, ``"format"``) and ``message`` is one human sentence
    that names the field, the value and the rule and says how to fix it.
    """

    def __init__(self, field: str, rule: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.rule = rule
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"RuleViolation(field={self.field!r}, rule={self.rule!r}, message={self.message!r})"

    def __reduce__(self) -> tuple[type[RuleViolation], tuple[str, str, str]]:
        return (type(self), (self.field, self.rule, self.message))
