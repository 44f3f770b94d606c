"""A pure ASGI middleware: a request id on every answer, and any warning the request earned."""

from __future__ import annotations

import json
import secrets
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keyhouse.errors import KeyhouseError


def add_warning(scope: Scope, text: str) -> None:
    scope.setdefault("state", {}).setdefault("warnings", []).append(text)


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        request_id = secrets.token_hex(8)
        state["request_id"] = request_id

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                for warning in state.get("warnings", []):
                    headers.append((b"warning", warning.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


DEFAULT_MAX_BODY_BYTES = 1024 * 1024


class BodyTooLarge(KeyhouseError):
    status = 413
    code = "body_too_large"

    @classmethod
    def over(cls, limit: int) -> BodyTooLarge:
        return cls(
            f"the request body is larger than {limit} bytes, the most Keyhouse takes "
            "(KEYHOUSE_MAX_BODY_BYTES): send fewer items per request",
            rule="max_body_bytes",
        )


class BodyLimitMiddleware:
    """413 for a body above ``max_bytes``: refused from its Content-Length before it is read,
    or as it streams in (chunked), before it is held in memory."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value.decode("latin-1").strip())
                except ValueError:
                    declared = 0
                if declared > limit:
                    await self._refuse(scope, send, limit)
                    return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge.over(limit)
            return message

        await self.app(scope, counted, send)

    @staticmethod
    async def _refuse(scope: Scope, send: Send, limit: int) -> None:
        from keyhouse.api.responses import error_body

        request_id = scope.get("state", {}).get("request_id")
        body = json.dumps(error_body(BodyTooLarge.over(limit), request_id)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
