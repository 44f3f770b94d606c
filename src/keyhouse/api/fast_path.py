"""The listings clients poll, answered without FastAPI's routing and dependency solving.

What Nuki clients poll: a lock's keys (``GET /smartlock/{smartlockId}/auth``), the account's
keys or one user's (``GET /smartlock/auth``, ``?accountUserId=N``) and the account's locks
(``GET /smartlock``). FastAPI's routing and the solving of parameters and dependencies took a
third of the CPU of a cached key listing (docs/benchmarks.md). This middleware answers exactly
those requests with the code their routes run (``auths.lock_keys_answer``,
``auths.all_keys_answer``, ``smartlocks.locks_answer``): the same token, scope, rate-limit and
lock checks, the same bytes, headers and errors. Anything else (another path or method,
another query, a number that is not plain digits within range) goes on to FastAPI unchanged,
which also keeps the routes in the OpenAPI document.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from keyhouse.api.auths import all_keys_answer, lock_keys_answer
from keyhouse.api.edge import INT32_MAX, INT32_MIN, INT64_MAX
from keyhouse.api.errors import known_error_answer
from keyhouse.api.smartlocks import locks_answer

_LOCK_KEYS = re.compile(r"/smartlock/([0-9]{1,19})/auth", re.ASCII)
_USER = re.compile(r"accountUserId=(-?[0-9]{1,10})", re.ASCII)


def _plain(digits: str, low: int, high: int) -> int | None:
    """The number ``digits`` spells as FastAPI would read it, if plainly and within range."""
    number = int(digits)
    return number if low <= number <= high and str(number) == digits else None


def _answer_for(path: str, query: bytes) -> Callable[[Request], Awaitable[Response]] | None:
    if path == "/smartlock":
        return None if query else lambda request: locks_answer(request, None, None, None, None)
    if path == "/smartlock/auth":
        if not query:
            return lambda request: all_keys_answer(request, None, None, None, None)
        found = _USER.fullmatch(query.decode("latin-1"))
        user = _plain(found[1], INT32_MIN, INT32_MAX) if found else None
        if user is None:
            return None
        return lambda request: all_keys_answer(request, user, None, None, None)
    found = _LOCK_KEYS.fullmatch(path)
    lock = _plain(found[1], 0, INT64_MAX) if found else None
    if query or lock is None:
        return None
    return lambda request: lock_keys_answer(request, lock, None, None, None)


class FastListings:
    """Pure ASGI, innermost of the app's middleware (request ids, body limits and Nuki mode
    still wrap it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        answer = _answer_for(path, scope["query_string"])
        if answer is None:
            await self.app(scope, receive, send)  # FastAPI's answer, its 4xx included
            return
        request = Request(scope, receive)
        try:
            response = await answer(request)
        except Exception as exc:
            known = known_error_answer(request, exc)
            if known is None:
                raise  # the app's last-resort handler answers (and logs) it, as for a route
            response = known
        await response(scope, receive, send)
