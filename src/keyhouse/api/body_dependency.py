"""The JSON body of a request, read once, with shell line continuations tolerated and reported."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request

from keyhouse.api.body import SHELL_CONTINUATIONS_WARNING, parse_json
from keyhouse.api.middleware import add_warning
from keyhouse.api.security import current_caller


async def json_body(request: Request, _caller: Any = Depends(current_caller)) -> Any:
    # The caller is resolved first (and cached for the endpoint's own scope check), so a
    # request without a valid token gets 401 before its body is read or judged.
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
