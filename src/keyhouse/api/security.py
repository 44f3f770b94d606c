"""Bearer tokens to callers, and the scope each endpoint needs (any one of those listed)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from keyhouse.errors import MissingScope, Unauthorized
from keyhouse.rules.secrets_ import hash_token
from keyhouse.runtime import Runtime
from keyhouse.services.caller import Caller
from keyhouse.store import repo
from keyhouse.store.models import ApiToken
from keyhouse.store.repo import ApiTokenRow

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


def unknown_token() -> Unauthorized:
    return Unauthorized(
        f"{NOT_AUTHORIZED}: the token is unknown or was revoked; create one with "
        "'keyhouse admin token create --account ID'",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def caller_of(row: ApiToken | ApiTokenRow) -> Caller:
    return Caller(account_id=row.account_id, scopes=frozenset(row.scopes.split()), token_id=row.id)


def caller_for(session: Session, header: str | None) -> Caller:
    """The caller an Authorization header stands for, looked up in ``session``."""
    row = repo.token_by_hash(session, hash_token(bearer_token(header)))
    if row is None:
        raise unknown_token()
    return caller_of(row)


def require_scope(caller: Caller, any_of: tuple[str, ...]) -> Caller:
    if not caller.scopes.intersection(any_of):
        wanted = " or ".join(f"'{scope}'" for scope in any_of)
        raise MissingScope(
            f"your token lacks the scope this needs: {wanted}; create a token with it, "
            f"e.g. 'keyhouse admin token create --account ID --scope {any_of[0]}'",
            rule="scope",
        )
    return caller


def current_caller(request: Request) -> Caller:
    with runtime_of(request).db.read() as session:
        return caller_for(session, request.headers.get("authorization"))


def scoped(*any_of: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency giving the caller, if their token holds one of ``any_of``."""

    async def dependency(caller: Caller = Depends(current_caller)) -> Caller:
        # async: a pure check, so it costs no trip to the thread pool.
        return require_scope(caller, any_of)

    dependency.__doc__ = f"Needs scope: {' or '.join(any_of)}"
    return dependency
