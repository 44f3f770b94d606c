"""The JSON body of a request, read once, with shell line continuations tolerated and reported."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from keyhouse.api.body import SHELL_CONTINUATIONS_WARNING, parse_json
from keyhouse.api.middleware import add_warning


async def json_body(request: Request) -> Any:
    data, repaired = parse_json(await request.body())
    if repaired:
        add_warning(request.scope, SHELL_CONTINUATIONS_WARNING)
    return data


def body_doc(schema: str, *, array: bool = False, description: str = "") -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON body by its official schema name."""
    ref: dict[str, Any] = {"$ref": f"#/components/schemas/{schema}"}
    if array:
        ref = {"type": "array", "items": ref}
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": ref}},
        }
    }
