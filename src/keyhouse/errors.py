"""Typed domain errors. One handler turns each into the Nuki-compatible error body."""

from __future__ import annotations

from dataclasses import dataclass

# How much of a refused value an error answer quotes.
ECHO_MAX = 60


def echo(value: object) -> str:
    """A value as an error answer quotes it: its repr, cut to ECHO_MAX characters."""
    text = repr(value)
    return text if len(text) <= ECHO_MAX else text[: ECHO_MAX - 1] + "…"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: the field (camelCase), the rule, and a sentence."""

    field: str | None
    rule: str
    message: str


class KeyhouseError(Exception):
    status: int = 400
    code: str = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        rule: str | None = None,
        problems: list[Problem] | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.rule = rule
        self.problems = problems
        self.headers = headers or {}
        if status is not None:
            self.status = status


class ValidationFailed(KeyhouseError):
    status = 400
    code = "validation_failed"

    @classmethod
    def of(cls, problems: list[Problem]) -> ValidationFailed:
        first = problems[0]
        message = first.message
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more problem(s), listed in 'problems')"
        return cls(message, field=first.field, rule=first.rule, problems=problems)


class MalformedBody(KeyhouseError):
    status = 400
    code = "malformed_json"


class Unauthorized(KeyhouseError):
    status = 401
    code = "unauthorized"


class MissingScope(KeyhouseError):
    status = 403
    code = "missing_scope"


class NotFound(KeyhouseError):
    """A resource that does not exist in the caller's account (403 where Nuki answers 403)."""

    status = 404
    code = "not_found"


class Conflict(KeyhouseError):
    status = 409
    code = "conflict"


class Locked(KeyhouseError):
    status = 423
    code = "locked"


class LockOffline(KeyhouseError):
    """The lock can't be reached now (serverState 4)."""

    status = 409
    code = "lock_offline"


class DeviceError(KeyhouseError):
    """The lock refused or failed (a device error code, a blocked motor)."""

    status = 409
    code = "device_error"


class TooManyRequests(KeyhouseError):
    """A rate limit: the answer carries Retry-After (seconds) and says when to try again."""

    status = 429
    code = "rate_limited"


class IdempotencyMismatch(KeyhouseError):
    """An ``Idempotency-Key`` sent again with a different request (method, path or body)."""

    status = 422
    code = "idempotency_mismatch"
