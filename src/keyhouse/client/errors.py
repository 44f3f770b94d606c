"""Typed errors of the Keyhouse / Nuki Web API SDK.

Every answer outside 2xx becomes a :class:`KeyhouseAPIError` subclass chosen by its status,
built from the Nuki error shape (``detailMessage``) plus Keyhouse's ``field``, ``rule``,
``requestId`` (falling back to the ``X-Request-Id`` header) and, for bodies that are not JSON
(a proxy's HTML page), the raw text.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

__all__ = [
    "AuthError",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "InvalidArgument",
    "KeyhouseAPIError",
    "KeyhouseClientError",
    "Locked",
    "MissingToken",
    "NotFound",
    "RateLimited",
    "ServerError",
    "SyncFailed",
    "ValidationError",
    "WaitTimeout",
    "error_from_response",
    "retry_after_seconds",
]

_MAX_TEXT = 500


class KeyhouseClientError(Exception):
    """The root of every error the SDK raises itself."""


class ConnectionFailed(KeyhouseClientError):
    """The server could not be reached (after the retries allowed for the method).

    ``url`` is the server's base URL, ``reason`` what the connection attempt said.
    """

    def __init__(self, message: str, url: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.reason = reason


class MissingToken(KeyhouseClientError):
    """No API token in the arguments, the environment or the config file's profile."""


class KeyhouseAPIError(KeyhouseClientError):
    """The server answered with an error status.

    ``message`` is Nuki's ``detailMessage`` (or the raw text), ``field``/``rule`` name the
    offending request field and the rule it breaks (Keyhouse), ``request_id`` identifies the
    request in the server's log, ``body`` is the parsed JSON (or the raw text).
    """

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        rule: str | None = None,
        request_id: str | None = None,
        body: Any = None,
        *,
        code: str | None = None,
        problems: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.field = field
        self.rule = rule
        self.request_id = request_id
        self.body = body
        self.code = code
        self.problems = problems or []
        self.retry_after = retry_after

    def __str__(self) -> str:
        extra = [f"{k}={v}" for k, v in (("field", self.field), ("rule", self.rule)) if v]
        if self.request_id:
            extra.append(f"requestId={self.request_id}")
        suffix = f" ({', '.join(extra)})" if extra else ""
        return f"{self.status}: {self.message}{suffix}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, message={self.message!r}, "
            f"field={self.field!r}, rule={self.rule!r}, request_id={self.request_id!r})"
        )


class AuthError(KeyhouseAPIError):
    """401: the token is missing, malformed, unknown or revoked."""


class Forbidden(KeyhouseAPIError):
    """403: the token lacks a scope, or the lock is unknown or another account's."""


class NotFound(KeyhouseAPIError):
    """404: no such lock, key or account user."""


class ValidationError(KeyhouseAPIError):
    """400/422: the request breaks a rule; ``field`` and ``rule`` say which."""


class InvalidArgument(ValidationError, ValueError):
    """An SDK call's arguments break the request's shape; nothing was sent (``status`` 0).

    ``field`` is the argument as it was passed (e.g. ``remote_alowed``), ``rule`` pydantic's
    error type (``extra_forbidden``, ``missing`` …), ``problems`` every problem found, each a
    dict with ``field``, ``rule`` and ``message``.
    """

    def __str__(self) -> str:
        return self.message


class Conflict(KeyhouseAPIError):
    """409: e.g. a duplicate keypad code or e-mail, or the lock is offline."""


class Locked(KeyhouseAPIError):
    """423: the key's deletion is queued or the lock is busy; see ``retry_after``."""


class RateLimited(KeyhouseAPIError):
    """429: too many requests; ``retry_after`` is the server's Retry-After in seconds."""


class ServerError(KeyhouseAPIError):
    """5xx: the server (or a proxy in front of it) failed."""


class SyncFailed(KeyhouseClientError):
    """The lock refused a key change: ``key`` is the key as listed, ``error`` the lock's words."""

    def __init__(self, key: Any, error: str | None) -> None:
        super().__init__(f"the lock refused the change of key {getattr(key, 'id', '?')}: {error}")
        self.key = key
        self.error = error


class WaitTimeout(KeyhouseClientError, TimeoutError):
    """A wait helper gave up: ``last`` is the last state seen (or None)."""

    def __init__(self, message: str, last: Any = None) -> None:
        super().__init__(message)
        self.last = last


_BY_STATUS: dict[int, type[KeyhouseAPIError]] = {
    400: ValidationError,
    401: AuthError,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: ValidationError,
    423: Locked,
    429: RateLimited,
}


def error_class(status: int) -> type[KeyhouseAPIError]:
    """The error class for an HTTP status."""
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, KeyhouseAPIError)


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (HTTP dates are not supported: None)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(seconds, 0.0)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def error_from_response(response: httpx.Response) -> KeyhouseAPIError:
    """Build the typed error for an error answer (JSON Nuki shape or any other body)."""
    raw = response.text
    parsed: Any = None
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    header_id = response.headers.get("x-request-id")
    status = response.status_code
    if isinstance(parsed, dict):
        message = (
            _text(parsed.get("detailMessage"))
            or _text(parsed.get("message"))
            or _text(parsed.get("error"))
            or raw[:_MAX_TEXT]
        )
        problems = parsed.get("problems")
        return error_class(status)(
            status,
            message,
            _text(parsed.get("field")),
            _text(parsed.get("rule")),
            _text(parsed.get("requestId")) or header_id,
            parsed,
            code=_text(parsed.get("error")),
            problems=problems if isinstance(problems, list) else None,
            retry_after=retry_after_seconds(response),
        )
    text = raw.strip()
    message = text[:_MAX_TEXT] if text else (response.reason_phrase or f"HTTP {status}")
    return error_class(status)(
        status,
        message,
        None,
        None,
        header_id,
        parsed if parsed is not None else raw,
        retry_after=retry_after_seconds(response),
    )
