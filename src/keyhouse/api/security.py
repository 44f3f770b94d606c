"""Bearer tokens to callers, and the scope each endpoint needs (any one of those listed)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from fastapi import Depends, Request
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from keyhouse.errors import MissingScope, TooManyRequests, Unauthorized
from keyhouse.rules.dates import utcnow
from keyhouse.rules.rate_limit import Verdict, describe
from keyhouse.rules.secrets_ import hash_token
from keyhouse.runtime import Runtime
from keyhouse.services.caller import Caller
from keyhouse.store import repo
from keyhouse.store.rate_limits import RateLimits
from keyhouse.store.repo import ApiTokenRow

T = TypeVar("T")

NOT_AUTHORIZED = "Your access token is not authorized"


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime


def bearer_token(header: str | None) -> str:
    """The token of an ``Authorization: Bearer …`` header."""
    if not header:
        raise Unauthorized(
            f"{NOT_AUTHORIZED}: the request has no Authorization header; "
            "send 'Authorization: Bearer <your API token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            f"{NOT_AUTHORIZED}: the Authorization header must read 'Bearer <your API token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token.strip()


CREATE_ONE = "create a new one with 'keyhouse admin token create --account ID'"


def _refused(why: str) -> Unauthorized:
    return Unauthorized(
        f"{NOT_AUTHORIZED}: {why}",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def unknown_token() -> Unauthorized:
    return _refused(f"the token is unknown (not one this server issued); {CREATE_ONE}")


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def usable(row: ApiTokenRow | None, now: datetime | None = None) -> ApiTokenRow:
    """The token row if it may be used now; else the 401 that says why."""
    if row is None:
        raise unknown_token()
    if row.revoked_at is not None:
        raise _refused(
            f"the token '{row.name}' was revoked at {_when(row.revoked_at)}; {CREATE_ONE}"
        )
    if row.expires_at is not None and row.expires_at <= (now or utcnow()):
        raise _refused(f"the token '{row.name}' expired at {_when(row.expires_at)}; {CREATE_ONE}")
    return row


def caller_of(row: ApiTokenRow, source: str | None = None) -> Caller:
    return Caller(
        account_id=row.account_id,
        scopes=frozenset(row.scopes.split()),
        token_id=row.id,
        token_name=row.name,
        source=source,
    )


def caller_for(session: Session, header: str | None, source: str | None = None) -> Caller:
    """The caller an Authorization header stands for, looked up in ``session``."""
    row = usable(repo.token_row_by_hash(session, hash_token(bearer_token(header))))
    return caller_of(row, source)


def client_address(request: Request) -> str | None:
    """The client's address: uvicorn replaces it from X-Forwarded-For only for a trusted
    proxy (KEYHOUSE_TRUSTED_PROXIES)."""
    return request.client.host if request.client else None


def require_scope(caller: Caller, any_of: tuple[str, ...]) -> Caller:
    if not caller.scopes.intersection(any_of):
        wanted = " or ".join(f"'{scope}'" for scope in any_of)
        raise MissingScope(
            f"your token lacks the scope this needs: {wanted}; create a token with it, "
            f"e.g. 'keyhouse admin token create --account ID --scope {any_of[0]}'",
            rule="scope",
        )
    return caller


def too_many(verdict: Verdict, why: str) -> TooManyRequests:
    at = verdict.next_allowed(utcnow())
    return TooManyRequests(
        f"{why}; try again in {verdict.retry_after_header} s (at {_when(at)})",
        rule="rate_limit",
        headers={"Retry-After": verdict.retry_after_header},
    )


def authenticated(
    runtime: Runtime,
    header: str | None,
    address: str | None,
    lookup: Callable[[str], tuple[ApiTokenRow | None, T]],
) -> tuple[ApiTokenRow, T]:
    """The token ``header`` names, if usable, with what ``lookup`` found beside it.

    A client address that failed to authenticate too often gets 429 before its token is
    looked at; each failure counts. A known token then counts against its own limit.
    """
    settings = runtime.settings
    limits = runtime.rate_limits
    where = address or "unknown"
    verdict = limits.test(settings.auth_failure_limit, "auth-failure", where)
    if not verdict.allowed:
        rule = describe_rule(limits, settings.auth_failure_limit)
        raise too_many(verdict, f"too many failed authentications from {where} ({rule})")
    try:
        found, beside = lookup(hash_token(bearer_token(header)))
        row = usable(found)
    except Unauthorized:
        limits.hit(settings.auth_failure_limit, "auth-failure", where)
        raise
    verdict = limits.hit(settings.rate_limit, "token", row.id)
    if not verdict.allowed:
        rule = describe_rule(limits, settings.rate_limit)
        raise too_many(verdict, f"the token '{row.name}' made too many requests ({rule})")
    return row, beside


def describe_rule(limits: RateLimits, text: str) -> str:
    item = limits.rule(text)
    return "no limit" if item is None else f"at most {describe(item)}"


def require_every_scope(caller: Caller, all_of: tuple[str, ...], why: str) -> Caller:
    missing = [scope for scope in all_of if scope not in caller.scopes]
    if missing:
        wanted = " and ".join(f"'{scope}'" for scope in missing)
        raise MissingScope(
            f"your token lacks {wanted}: {why}; create a token with it, e.g. "
            f"'keyhouse admin token create --account ID --scope {missing[0]}'",
            rule="scope",
        )
    return caller


def _token_of(session: Session | Connection, request: Request) -> tuple[ApiTokenRow, str | None]:
    """The request's usable token, looked up in ``session``, and the client's address."""
    runtime = runtime_of(request)
    address = client_address(request)

    def lookup(token_hash: str) -> tuple[ApiTokenRow | None, None]:
        return repo.token_row_by_hash(session, token_hash), None

    row, _ = authenticated(runtime, request.headers.get("authorization"), address, lookup)
    return row, address


def current_caller(request: Request) -> Caller:
    runtime = runtime_of(request)
    with runtime.db.read_connection() as connection:
        row, address = _token_of(connection, request)
    runtime.token_uses.record(row)
    return caller_of(row, address)


def caller_in(session: Session | Connection, request: Request, any_of: tuple[str, ...]) -> Caller:
    """The caller, as ``current_caller`` and ``scoped(*any_of)`` give it, looked up in
    ``session``: for a listing that does all its work in one trip to the thread pool."""
    row, address = _token_of(session, request)
    runtime_of(request).token_uses.record(row)
    return require_scope(caller_of(row, address), any_of)


def scoped_all(*all_of: str, why: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency giving the caller, if their token holds every scope of ``all_of``."""

    async def dependency(caller: Caller = Depends(current_caller)) -> Caller:
        return require_every_scope(caller, all_of, why)

    dependency.__doc__ = f"Needs scopes: {' and '.join(all_of)}"
    return dependency


def scoped(*any_of: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency giving the caller, if their token holds one of ``any_of``."""

    async def dependency(caller: Caller = Depends(current_caller)) -> Caller:
        # async: a pure check, so it costs no trip to the thread pool.
        return require_scope(caller, any_of)

    dependency.__doc__ = f"Needs scope: {' or '.join(any_of)}"
    return dependency
