"""Building answers: JSON bytes from shapes, empty 204s, and the one error body."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import Request
from fastapi.responses import Response

from keyhouse.errors import KeyhouseError
from keyhouse.services.present import Shape, to_json

JSON = "application/json"


def json_response(value: Shape | Sequence[Shape]) -> Response:
    return Response(content=to_json(value), media_type=JSON)


def no_content() -> Response:
    return Response(status_code=204)


def request_id_of(request: Request) -> str | None:
    return request.scope.get("state", {}).get("request_id")


# The longest sentence an error answer carries: whatever a message quotes, the answer stays
# small (a 10 MB name is not sent back).
MESSAGE_MAX = 500


def _short(text: str | None) -> str | None:
    if text is None or len(text) <= MESSAGE_MAX:
        return text
    return text[: MESSAGE_MAX - 1] + "…"


def error_body(error: KeyhouseError, request_id: str | None) -> dict[str, object]:
    body: dict[str, object] = {
        "detailMessage": _short(error.message),
        "stackTrace": [],
        "suppressedExceptions": [],
        "error": error.code,
        "status": error.status,
    }
    if error.field:
        body["field"] = _short(error.field)
    if error.rule:
        body["rule"] = error.rule
    if error.problems and len(error.problems) > 0:
        body["problems"] = [
            {
                k: v
                for k, v in (
                    ("field", _short(p.field)),
                    ("rule", p.rule),
                    ("message", _short(p.message)),
                )
                if v
            }
            for p in error.problems[:50]
        ]
    if request_id:
        body["requestId"] = request_id
    return body
