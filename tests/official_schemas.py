"""Validate response bodies against the OFFICIAL Nuki Web API 3.9.0 component schemas.

The official spec's structure (``tests/reference/nuki-web-api-3.9.0.structure.json``, made from
Nuki's published document by ``scripts/extract_official_spec.py``, which notes the source file's
SHA-256; prose left out, defects kept) is loaded as it is, its ``$ref``s resolved through a
``referencing`` registry, and bodies checked with ``openapi_schema_validator.OAS30ReadValidator``
(OpenAPI 3.0 dialect, response direction, with format checks: date-time, int32, int64…).

Two known defects of the official spec are patched, and only those:

* ``SmartlockAuth.type`` declares ``maximum: 2`` although its own description lists
  13 (keypad code), 14 (z-key) and 15 (virtual), and the API returns keypad codes as type 13
  (see nuki-web-api-behavior.md, section 3). The maximum is raised to 15.
* ``SmartlockLog.state`` declares ``minimum: 1`` although its own description lists
  "0 .. Success", and api.nuki.io logs successes as 0. The minimum is lowered to 0.

Each patch asserts the defect is still in the official file, so a fixed spec drops it.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

from jsonschema.exceptions import ValidationError
from openapi_schema_validator import (
    OAS30ReadValidator,
    OAS30WriteValidator,
    OAS31Validator,
    oas30_format_checker,
    oas31_format_checker,
)
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4, DRAFT202012

REFERENCE = Path(__file__).resolve().parent / "reference"
OFFICIAL_SPEC_PATH = REFERENCE / "nuki-web-api-3.9.0.structure.json"
SPEC_URI = "urn:nuki-web-api:3.9.0"

# (schema, property, keyword) -> (official value, patched value, why)
SPEC_PATCHES: dict[tuple[str, str, str], tuple[Any, Any, str]] = {
    ("SmartlockAuth", "type", "maximum"): (
        2,
        15,
        "the description lists types 13, 14 and 15, and keypad codes are type 13",
    ),
    ("SmartlockLog", "state", "minimum"): (
        1,
        0,
        "the description lists 0 .. Success, and successful entries have state 0",
    ),
}


@functools.cache
def official_spec() -> dict[str, Any]:
    """The official document's structure, unpatched."""
    return json.loads(OFFICIAL_SPEC_PATH.read_text(encoding="utf-8"))


@functools.cache
def patched_spec() -> dict[str, Any]:
    spec = copy.deepcopy(official_spec())
    schemas = spec["components"]["schemas"]
    for (schema, prop, keyword), (official, patched, _why) in SPEC_PATCHES.items():
        node = schemas[schema]["properties"][prop]
        assert node.get(keyword) == official, (
            f"the official spec no longer has {schema}.{prop}.{keyword} = {official}: "
            "drop the patch"
        )
        node[keyword] = patched
    return spec


@functools.cache
def _registry() -> Registry:
    resource = Resource.from_contents(patched_spec(), default_specification=DRAFT4)
    return Registry().with_resource(SPEC_URI, resource)


@functools.cache
def official_validator(name: str, *, request: bool = False) -> Any:
    """A validator for ``#/components/schemas/<name>`` of the (patched) official spec.

    ``request=True`` checks in the request direction (readOnly properties are refused),
    otherwise in the response direction (writeOnly properties are refused).
    """
    assert name in patched_spec()["components"]["schemas"], f"no official schema {name!r}"
    schema = {"$ref": f"{SPEC_URI}#/components/schemas/{name}"}
    cls = OAS30WriteValidator if request else OAS30ReadValidator
    return cls(schema, registry=_registry(), format_checker=oas30_format_checker)


def official_errors(name: str, body: Any, *, request: bool = False) -> list[str]:
    """Every violation of the official schema ``name`` by ``body``, as readable lines."""
    found: list[ValidationError] = sorted(
        official_validator(name, request=request).iter_errors(body),
        key=lambda e: list(e.absolute_path),
    )
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in found]


def assert_official(name: str, body: Any) -> None:
    """Fail with every violation if ``body`` does not match the official schema ``name``."""
    problems = official_errors(name, body)
    assert not problems, f"{name} does not match the official schema:\n" + "\n".join(problems)


def assert_all_official(name: str, bodies: list[Any]) -> None:
    assert isinstance(bodies, list), bodies
    for index, body in enumerate(bodies):
        problems = official_errors(name, body)
        assert not problems, f"{name} [{index}] does not match the official schema:\n" + (
            "\n".join(problems)
        )


def validator_for_document(document: dict[str, Any], name: str) -> Any:
    """A validator for ``#/components/schemas/<name>`` of any OpenAPI document (e.g. ours).

    OpenAPI 3.1 documents (what FastAPI writes) use the JSON Schema 2020-12 dialect, 3.0 ones
    the OpenAPI 3.0 dialect.
    """
    uri = "urn:openapi:document"
    if str(document.get("openapi", "")).startswith("3.1"):
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        cls: Any = OAS31Validator
        checker = oas31_format_checker
    else:
        resource = Resource.from_contents(document, default_specification=DRAFT4)
        cls, checker = OAS30ReadValidator, oas30_format_checker
    registry = Registry().with_resource(uri, resource)
    schema = {"$ref": f"{uri}#/components/schemas/{name}"}
    return cls(schema, registry=registry, format_checker=checker)


def official_operation(method: str, path: str) -> dict[str, Any] | None:
    """The official spec's operation for ``method`` on a concrete ``path`` (None: none)."""
    import re

    paths = official_spec()["paths"]
    for template in sorted(paths, key=lambda t: (t.count("{"), t)):
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in paths[template]:
            return paths[template][method.lower()]
    return None


def request_problems(method: str, path: str, params: Any, content: bytes) -> list[str]:
    """Why a request to Nuki's API is not one the official spec declares (empty: it is): the
    operation, its query parameters, and its JSON body against the declared schema."""
    operation = official_operation(method, path)
    if operation is None:
        return [f"{method} {path} is not an official operation"]
    declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
    problems = [f"query {name!r} is not declared" for name in params if name not in declared]
    if content:
        body = operation.get("requestBody")
        if body is None:
            return [*problems, f"{method} {path} declares no body"]
        if "$ref" in body:  # a shared request body (#/components/requestBodies/…)
            body = official_spec()["components"]["requestBodies"][body["$ref"].rsplit("/", 1)[1]]
        schema = body["content"]["application/json"]["schema"]
        ref = schema.get("$ref") or schema.get("items", {}).get("$ref")
        name = ref.rsplit("/", 1)[1]
        value = json.loads(content)
        bodies = value if "items" in schema else [value]
        for item in bodies:
            problems += official_errors(name, item, request=True)
    return problems
