"""Issue 11: our OpenAPI document tells the truth. Every status an operation answers is declared
with the error shape; every constraint the server enforces is in the schema, in JSON Schema
terms (no ge/le). The fuzz run (tests/fuzz) checks the answers against it; this checks the
document itself, served by a server on either store."""

from __future__ import annotations

from typing import Any

import pytest

ERROR = {"$ref": "#/components/schemas/ErrorBody"}


@pytest.fixture
def document(store_tenant: Any) -> dict[str, Any]:
    answer = store_tenant.client.get("/openapi.json")
    assert answer.status_code == 200
    return answer.json()


def _walk(node: Any, parent: str = "") -> Any:
    if isinstance(node, dict):
        for key, value in node.items():
            yield parent, key, value
            yield from _walk(value, key)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, parent)


def test_no_keyword_json_schema_does_not_know(document: dict[str, Any]) -> None:
    found = [
        (parent, key)
        for parent, key, _ in _walk(document)
        if key in ("ge", "le", "gt", "lt") and parent != "properties"
    ]
    assert found == []


def test_every_operation_declares_the_errors_it_answers(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            expected = {"400", "401", "403", "404"}
            if method != "get":
                expected |= {"409", "423"}
            if "requestBody" in operation:
                expected.add("413")
            responses = operation["responses"]
            assert expected <= set(responses), (method, path, sorted(responses))
            for status in expected:
                schema = responses[status]["content"]["application/json"]["schema"]
                assert schema == ERROR, (method, path, status)


def _parameter(document: dict[str, Any], path: str, method: str, name: str) -> dict[str, Any]:
    (found,) = [p for p in document["paths"][path][method]["parameters"] if p["name"] == name]
    return found["schema"]


def test_the_constraints_the_server_enforces_are_in_the_schema(document: dict[str, Any]) -> None:
    assert _parameter(document, "/smartlock/log", "get", "limit")["minimum"] == 1
    assert _parameter(document, "/account/user", "get", "limit")["minimum"] == 1
    assert _parameter(document, "/account/user", "get", "offset")["minimum"] == 0
    assert "pattern" in _parameter(document, "/smartlock/auth", "get", "types")
    assert _parameter(document, "/smartlock/log", "get", "fromDate")["format"] == "date-time"
    lock = _parameter(document, "/smartlock/{smartlockId}", "get", "smartlockId")
    assert (lock["minimum"], lock["maximum"]) == (0, 2**63 - 1)
    user = _parameter(document, "/account/user/{accountUserId}", "get", "accountUserId")
    assert user["maximum"] == 2**31 - 1
    schemas = document["components"]["schemas"]
    assert schemas["AccountUserCreate"]["properties"]["email"]["format"] == "email"
    assert schemas["SmartlockAction"]["properties"]["action"]["enum"] == [1, 2, 3, 4, 5, 6, 7]
    assert schemas["SmartlockAuthCreate"]["properties"]["name"]["minLength"] == 1
    account_user = schemas["SmartlockAuthCreate"]["properties"]["accountUserId"]["anyOf"][0]
    assert account_user["maximum"] == 2**31 - 1
    items = schemas["SmartlocksAuthCreate"]["properties"]["smartlockIds"]
    assert items["maxItems"] == 10_000
    assert items["items"]["maximum"] == 2**63 - 1
    assert schemas["SmartlockAuthCreate"]["properties"]["allowedFromDate"]["anyOf"][0] == {
        "format": "date-time",
        "type": "string",
    }
