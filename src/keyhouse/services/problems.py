"""Collects rule violations of one request so the answer can list them all at once."""

from __future__ import annotations

from collections.abc import Callable

from keyhouse.errors import Problem, ValidationFailed
from keyhouse.rules.violations import RuleViolation


class Problems:
    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, field: str | None, rule: str, message: str) -> None:
        self.items.append(Problem(field, rule, message))

    def check(self, rule_check: Callable[[], object]) -> None:
        """Run a pure rule; record its violation instead of raising."""
        try:
            rule_check()
        except RuleViolation as violation:
            self.items.append(Problem(violation.field, violation.rule, violation.message))

    def raise_if_any(self) -> None:
        if self.items:
            # The same rule checked for several locks must be listed once, not once per lock.
            raise ValidationFailed.of(list(dict.fromkeys(self.items)))
