"""Our OpenAPI document: the official schema names, an example for each body, bearer auth."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from keyhouse import __version__
from keyhouse.rules.idempotency import HEADER as IDEMPOTENCY_HEADER
from keyhouse.schemas import (
    AccountUser,
    AccountUserCreate,
    AccountUserUpdate,
    ErrorBody,
    Smartlock,
    SmartlockAuth,
    SmartlockAuthCreate,
    SmartlockAuthMultiUpdate,
    SmartlockAuthUpdate,
    SmartlocksAuthCreate,
)
from keyhouse.schemas.invite import InviteStatus
from keyhouse.schemas.log import (
    AppKeyUse,
    DoorDecision,
    EmulatorLock,
    EmulatorLockUpdate,
    EmulatorNuki,
    EmulatorNukiUpdate,
    KeypadEntry,
    SmartlockAction,
    SmartlockLog,
    Tamper,
)
from keyhouse.schemas.token import NewToken, TokenCreate, TokenInfo

# Our class names -> the official 3.9.0 schema names.
OFFICIAL_NAMES = {
    "SmartlockState": "Smartlock.State",
    "SmartlockConfig": "Smartlock.Config",
    "ObjectIdShape": "ObjectId",
}
RESPONSE_SHAPES: tuple[type[BaseModel], ...] = (
    Smartlock,
    AccountUser,
    SmartlockAuth,
    SmartlockLog,
    EmulatorLock,
    EmulatorNuki,
    DoorDecision,
    InviteStatus,
    TokenInfo,
    NewToken,
    ErrorBody,
)
REQUEST_SHAPES: tuple[type[BaseModel], ...] = (
    AccountUserCreate,
    AccountUserUpdate,
    SmartlockAuthCreate,
    SmartlocksAuthCreate,
    SmartlockAuthUpdate,
    SmartlockAuthMultiUpdate,
    SmartlockAction,
    EmulatorLockUpdate,
    EmulatorNukiUpdate,
    KeypadEntry,
    AppKeyUse,
    Tamper,
    TokenCreate,
)

DESCRIPTION = """
Keyhouse speaks the Nuki Web API (3.9.0): the same paths, verbs, JSON shapes and status codes
as `api.nuki.io`, so existing scripts work by changing the base URL.

**Authorize** with the API token Keyhouse printed on first start (or one from
`keyhouse admin token create`): click *Authorize* and paste the token.

Writes to keys answer 204 like Nuki, and are honest about it: until the lock confirms, the key
shows `syncState: "pending"` and an `operationId`; then `applied` with its `authId`, or
`failed` with the lock's reason in `error`. Every error answers in Nuki's shape
(`detailMessage`, `stackTrace`, `suppressedExceptions`) plus `error`, `field`, `rule` and
`problems` that say exactly what is wrong.

**Safe retries**: every write takes an optional `Idempotency-Key` header (e.g. a UUID). A retry
with the same key, method, path and body within 24 h is done once: it gets the first answer
again, with `Idempotent-Replayed: true`. Nuki's API has no such header; clients that don't send
it see no difference.
"""


def _rename(node: Any) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                name = value.rsplit("/", 1)[-1]
                value = f"#/components/schemas/{OFFICIAL_NAMES.get(name, name)}"
            out[key] = _rename(value)
        return out
    if isinstance(node, list):
        return [_rename(item) for item in node]
    return node


def _component_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    template = "#/components/schemas/{model}"
    shapes = [(s, "serialization") for s in RESPONSE_SHAPES] + [
        (s, "validation") for s in REQUEST_SHAPES
    ]
    for shape, mode in shapes:
        schema = shape.model_json_schema(by_alias=True, ref_template=template, mode=mode)  # type: ignore[arg-type]
        for name, definition in schema.pop("$defs", {}).items():
            schemas[OFFICIAL_NAMES.get(name, name)] = definition
        example = getattr(shape, "example", None)
        if example is not None:
            schema.pop("example", None)
            schema["example"] = example
        schemas[OFFICIAL_NAMES.get(shape.__name__, shape.__name__)] = schema
    return _rename(schemas)


def _error_responses(method: str, has_body: bool) -> dict[str, Any]:
    """The errors an operation can answer, each in the one error shape."""
    ref = {"$ref": "#/components/schemas/ErrorBody"}
    content = {"application/json": {"schema": ref}}
    found = {
        "400": {
            "description": "Bad parameter: the body names the field and the rule (a NUL "
            "character, a lone surrogate, a number beyond its range, more than 10,000 items…)",
            "content": content,
        },
        "401": {
            "description": "No token, or an unknown, revoked or expired one (the message says "
            "which)",
            "content": content,
        },
        "403": {"description": "Missing scope, or not in your account", "content": content},
        "404": {"description": "No such resource in your account", "content": content},
        "429": {
            "description": "A rate limit (per token, or failed authentications per client "
            "address): retry after the seconds in Retry-After",
            "content": content,
        },
    }
    if method != "get":
        found["409"] = {
            "description": "Conflict (e-mail or keypad code taken, limits, lock offline or "
            "refusing)",
            "content": content,
        }
        found["423"] = {
            "description": "Other changes to the same lock are being stored: retry after the "
            "seconds in Retry-After",
            "content": content,
        }
    if has_body:
        found["413"] = {
            "description": "The body is larger than KEYHOUSE_MAX_BODY_BYTES (1 MiB by default)",
            "content": content,
        }
    return found


_IDEMPOTENCY_MISMATCH = {
    "description": f"The {IDEMPOTENCY_HEADER} was used with a different request (method, path or "
    "body) within 24 h: rule idempotency_mismatch",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
}
_KEYWORDS = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}


def _json_schema_terms(node: Any, parent: str = "") -> Any:
    """Pydantic writes the bounds of an integer behind a validator as ge/le, which JSON Schema
    does not know: as minimum/maximum (the tighter one where both are given)."""
    if isinstance(node, list):
        return [_json_schema_terms(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        out[key] = _json_schema_terms(value, key)
    if parent in ("properties", "paths", "schemas", "responses", "examples", "example"):
        return out
    for short, keyword in _KEYWORDS.items():
        if short in out and isinstance(out[short], int | float):
            bound = out.pop(short)
            if keyword in out:
                tighter = max if keyword in ("minimum", "exclusiveMinimum") else min
                bound = tighter(out[keyword], bound)
            out[keyword] = bound
    return out


def _plain_optional(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional parameter as its type (``integer``), not ``anyOf [integer, null]``: a
    parameter left out is not sent at all, so null is never a value a client sends, and Swagger
    UI renders the union as "integer | (integer | null)"."""
    options = schema.get("anyOf")
    if not options:
        return schema
    kept = [option for option in options if option.get("type") != "null"]
    if len(kept) != 1 or len(kept) == len(options):
        return schema
    return {**{k: v for k, v in schema.items() if k != "anyOf"}, **kept[0]}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title="Keyhouse: the Nuki Web API, self-hosted",
        version=__version__,
        description=DESCRIPTION,
        routes=app.routes,
    )
    document = _rename(document)
    components = document.setdefault("components", {})
    generated = components.get("schemas", {})
    for name in list(generated):
        # FastAPI's copies under our class names: every $ref now uses the official name.
        if name in {"HTTPValidationError", "ValidationError"} or name in OFFICIAL_NAMES:
            del generated[name]
    generated.update(_component_schemas())
    components["schemas"] = generated
    components["securitySchemes"] = {
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "description": "Your API token: Authorization: Bearer <token>",
        }
    }
    document["security"] = [{"bearerAuth": []}]
    for path in document.get("paths", {}).values():
        for method, operation in path.items():
            for parameter in operation.get("parameters", []):
                parameter["schema"] = _plain_optional(parameter.get("schema", {}))
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            has_body = "requestBody" in operation
            for status, answer in _error_responses(method, has_body).items():
                responses.setdefault(status, answer)
            if any(p.get("name") == IDEMPOTENCY_HEADER for p in operation.get("parameters", [])):
                responses.setdefault("422", _IDEMPOTENCY_MISMATCH)
    document = _json_schema_terms(document)
    app.openapi_schema = document
    return document
