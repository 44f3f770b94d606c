"""A pure ASGI middleware: a request id on every answer, and any warning the request earned."""

from __future__ import annotations

import secrets
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


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
