"""The listing clients poll, answered without FastAPI's routing and dependency solving.

``GET /smartlock/{smartlockId}/auth`` without a query string is what a Nuki client polls for
a lock's keys. Served from the listing cache it costs little of ours, and FastAPI's routing
and the solving of its parameters and dependencies took a third of the CPU of every such
request (docs/benchmarks.md). This middleware answers exactly that request with the same code
the route runs (``auths.lock_keys_answer``): the same token, scope, rate-limit and lock checks,
the same bytes, headers and errors. Anything else (another path or method, any query string,
an id that is not plain digits within range) goes on to FastAPI unchanged, which also keeps
the route in the OpenAPI document.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from keyhouse.api.auths import lock_keys_answer
from keyhouse.api.edge import INT64_MAX
from keyhouse.api.errors import known_error_answer

_LOCK_KEYS = re.compile(r"/smartlock/([0-9]{1,19})/auth", re.ASCII)


class FastListings:
    """Pure ASGI, innermost of the app's middleware (request ids, body limits and Nuki mode
    still wrap it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope["query_string"]:
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        found = _LOCK_KEYS.fullmatch(path)
        if found is None or int(found[1]) > INT64_MAX or found[1] != str(int(found[1])):
            await self.app(scope, receive, send)  # FastAPI's answer, its 4xx included
            return
        request = Request(scope, receive)
        try:
            response = await lock_keys_answer(request, int(found[1]), None, None, None)
        except Exception as exc:
            answer = known_error_answer(request, exc)
            if answer is None:
                raise  # the app's last-resort handler answers (and logs) it, as for a route
            response = answer
        await response(scope, receive, send)
