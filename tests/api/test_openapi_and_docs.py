"""/docs (Swagger UI, served without a CDN) and /openapi.json; response bodies checked against
the OFFICIAL Nuki Web API 3.9.0 component schemas (see tests/official_schemas.py)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from conftest import Tenant
from keyhouse.store.models import SimulatedLock
from official_schemas import (
    SPEC_PATCHES,
    assert_all_official,
    assert_official,
    official_errors,
    official_spec,
    validator_for_document,
)

OFFICIAL_SCHEMA_NAMES = [
    "Smartlock",
    "Smartlock.State",
    "Smartlock.Config",
    "AccountUser",
    "AccountUserCreate",
    "AccountUserUpdate",
    "SmartlockAuth",
    "SmartlockAuthCreate",
    "SmartlocksAuthCreate",
    "SmartlockAuthUpdate",
    "SmartlockAuthMultiUpdate",
]
REQUEST_SCHEMA_NAMES = [
    "AccountUserCreate",
    "AccountUserUpdate",
    "SmartlockAuthCreate",
    "SmartlocksAuthCreate",
    "SmartlockAuthUpdate",
    "SmartlockAuthMultiUpdate",
]
PATHS = {
    "/smartlock": {"get"},
    "/smartlock/{smartlockId}": {"get"},
    "/account/user": {"get", "put"},
    "/account/user/{accountUserId}": {"get", "post", "delete"},
    "/smartlock/{smartlockId}/auth": {"get", "put"},
    "/smartlock/{smartlockId}/auth/{id}": {"get", "post", "delete"},
    "/smartlock/auth": {"get", "put", "post", "delete"},
}
VERBS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


# --- /docs ------------------------------------------------------------------------------------


class AssetCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.assets: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for attribute in ("src", "href"):
            value = found.get(attribute)
            if value is not None:
                self.assets.append((tag, value))


def test_docs_reference_only_local_assets_and_serve_them(client: TestClient) -> None:
    answer = client.get("/docs")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    html = answer.text
    collector = AssetCollector()
    collector.feed(html)
    tags = {tag for tag, _ in collector.assets}
    assert {"script", "link"} <= tags, collector.assets
    for tag, url in collector.assets:
        assert not re.match(r"^(https?:)?//", url, re.IGNORECASE), f"<{tag}> loads {url}"
        assert url.startswith("/"), url
    # nowhere on the page a CDN or any other remote URL
    assert not re.search(r"https?://", html), html
    assert "cdn" not in html.lower()
    assert "/openapi.json" in html

    urls = [url for _, url in collector.assets]
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        (url,) = [u for u in urls if u.endswith("/" + asset)]
        served = client.get(url)
        assert served.status_code == 200, url
        assert len(served.content) > 10_000, url
    assert (
        client.get(next(u for u in urls if u.endswith(".js")))
        .headers["content-type"]
        .startswith(("text/javascript", "application/javascript"))
    )
    assert (
        client.get(next(u for u in urls if u.endswith(".css")))
        .headers["content-type"]
        .startswith("text/css")
    )
    for url in urls:
        assert client.get(url).status_code == 200, url


def test_root_leads_to_the_docs(client: TestClient) -> None:
    answer = client.get("/", follow_redirects=False)
    assert answer.status_code in (301, 302, 303, 307, 308)
    assert answer.headers["location"] == "/docs"


# --- /openapi.json ----------------------------------------------------------------------------


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    answer = client.get("/openapi.json")
    assert answer.status_code == 200
    return answer.json()


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"not a local $ref: {ref}"
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"$ref {ref} does not resolve ({part})"
        node = node[part]
    return node


def all_refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        for value in node.values():
            found += all_refs(value)
        return found
    if isinstance(node, list):
        return [ref for item in node for ref in all_refs(item)]
    return []


def test_openapi_has_the_official_schema_names(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    missing = [name for name in OFFICIAL_SCHEMA_NAMES if name not in schemas]
    assert not missing, sorted(schemas)
    # and they are the ones in use: responses and request bodies refer to them by those names
    refs = set(all_refs(document["paths"]))
    for name in ("Smartlock", "AccountUser", "SmartlockAuth", *REQUEST_SCHEMA_NAMES):
        assert f"#/components/schemas/{name}" in refs, name
    # each shape is published once, under its official name only
    for python_name in ("SmartlockState", "SmartlockConfig", "ObjectIdShape"):
        assert python_name not in schemas, python_name
    assert "ObjectId" in schemas
    smartlock = schemas["Smartlock"]["properties"]
    assert "Smartlock.State" in str(smartlock["state"])
    assert "Smartlock.Config" in str(smartlock["config"])


def test_every_issue_path_has_its_official_verbs(document: dict[str, Any]) -> None:
    official = official_spec()["paths"]
    for path, verbs in PATHS.items():
        assert path in document["paths"], path
        ours = {verb for verb in document["paths"][path] if verb in VERBS}
        assert verbs <= ours, (path, ours)
        # no verb Nuki does not have on that path
        assert ours <= set(official[path]), (path, ours - set(official[path]))
    for path, item in document["paths"].items():
        if path in official:
            extra = {v for v in item if v in VERBS} - set(official[path])
            assert not extra, (path, extra)


def test_every_operation_uses_bearer_auth(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    bearer = [name for name, s in schemes.items() if s == {**s, "type": "http", "scheme": "bearer"}]
    assert bearer, schemes
    (name,) = bearer
    assert {name: []} in document.get("security", [])
    for path, item in document["paths"].items():
        for verb, operation in item.items():
            if verb in VERBS and "security" in operation:
                assert {name: []} in operation["security"], (path, verb)


def test_optional_parameters_are_plain_types(document: dict[str, Any]) -> None:
    """Issue 15.16: Swagger UI showed `integer | (integer | null)` for an optional filter."""
    seen = 0
    for path in document["paths"].values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                schema = parameter["schema"]
                assert "anyOf" not in schema, (parameter["name"], schema)
                assert "type" in schema or "$ref" in schema or "enum" in schema, parameter
                seen += 1
    assert seen > 10
    (get_locks,) = [document["paths"]["/smartlock"]["get"]]
    kinds = {p["name"]: p["schema"]["type"] for p in get_locks["parameters"]}
    # the official filters, and Keyhouse's own paging (limit and the cursor after)
    assert kinds == {"authId": "integer", "type": "integer", "limit": "integer", "after": "string"}


def test_swagger_ui_shows_execute_after_one_click(client: TestClient) -> None:
    """Issue 15.16: with tryItOutEnabled the first "Try it out" click turned try-out off
    (tests/browser/test_swagger_browser.py clicks it in Chromium)."""
    assert "tryItOutEnabled" not in client.get("/docs").text


def test_every_request_body_has_an_example(document: dict[str, Any]) -> None:
    seen = 0
    for path, item in document["paths"].items():
        for verb, operation in item.items():
            if verb not in VERBS or "requestBody" not in operation:
                continue
            seen += 1
            media = operation["requestBody"]["content"]["application/json"]
            schema = media["schema"]
            target = schema["items"] if schema.get("type") == "array" else schema
            if "$ref" in target:
                target = resolve(document, target["$ref"])
            has_example = any(
                "example" in node or "examples" in node for node in (media, schema, target)
            )
            assert has_example, f"{verb.upper()} {path}: request body without an example"
    # PUT/POST on users and keys (one lock and many), DELETE /smartlock/auth, the lock action,
    # the emulator's lock settings, keypad entry, app key use and tampering, its Nuki-mode
    # switches, and a new token
    assert seen == 14


def test_request_examples_are_valid_for_keyhouse_and_for_nuki(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for name in REQUEST_SCHEMA_NAMES:
        example = schemas[name].get("example")
        assert example is not None, name
        ours = list(validator_for_document(document, name).iter_errors(example))
        assert not ours, (name, [e.message for e in ours])
        theirs = official_errors(name, example, request=True)
        assert not theirs, (name, example, theirs)


def test_every_ref_resolves(document: dict[str, Any]) -> None:
    refs = all_refs(document)
    assert len(refs) > 20
    for ref in set(refs):
        assert isinstance(resolve(document, ref), dict), ref


# --- the official schemas, and response bodies against them -----------------------------------


def test_the_official_validator_is_strict_and_the_patch_is_needed() -> None:
    assert official_errors("Smartlock", {}), "an empty object must not pass"
    assert official_errors("AccountUser", {"accountUserId": "1"})
    key = {
        "id": "65219648fe57075d71a6cb01",
        "smartlockId": 18298712180,
        "type": 13,
        "name": "Cleaner",
        "enabled": True,
        "remoteAllowed": False,
        "lockCount": 0,
        "code": 345678,
        "creationDate": "2026-12-01T08:00:00.000Z",
    }
    assert official_errors("SmartlockAuth", key) == []
    assert official_errors("SmartlockAuth", {**key, "creationDate": "yesterday"})
    assert official_errors("SmartlockAuth", {**key, "type": 16})
    # the unpatched official spec refuses type 13 and log state 0: the defects the patches fix
    assert set(SPEC_PATCHES) == {
        ("SmartlockAuth", "type", "maximum"),
        ("SmartlockLog", "state", "minimum"),
    }
    for (schema, prop, keyword), (official, _patched, _why) in SPEC_PATCHES.items():
        raw = official_spec()["components"]["schemas"][schema]["properties"][prop]
        assert raw[keyword] == official


def put_offline(tenant: Tenant, smartlock_id: int) -> None:
    with tenant.runtime.db.session() as session:
        session.execute(
            update(SimulatedLock)
            .where(SimulatedLock.smartlock_id == smartlock_id)
            .values(online=False)
        )


def test_smartlock_bodies_match_the_official_schema(tenant: Tenant) -> None:
    put_offline(tenant, tenant.plain_lock)
    answer = tenant.get("/smartlock")
    assert answer.status_code == 200
    locks = answer.json()
    assert len(locks) == 2
    assert_all_official("Smartlock", locks)
    for lock in locks:
        assert_official("Smartlock.State", lock["state"])
        assert_official("Smartlock.Config", lock["config"])
    states = {lock["smartlockId"]: lock["serverState"] for lock in locks}
    assert states == {tenant.keypad_lock: 0, tenant.plain_lock: 4}
    for smartlock_id in (tenant.keypad_lock, tenant.plain_lock):
        answer = tenant.get(f"/smartlock/{smartlock_id}")
        assert answer.status_code == 200
        assert_official("Smartlock", answer.json())


def test_account_user_bodies_match_the_official_schema(tenant: Tenant) -> None:
    answer = tenant.put(
        "/account/user", json={"email": "anna@example.com", "name": "Anna", "language": "de"}
    )
    assert answer.status_code == 200
    assert_official("AccountUser", answer.json())
    answer = tenant.put(
        "/account/user", json={"email": "firma@example.com", "name": "Firma", "type": 1}
    )
    assert answer.status_code == 200
    assert_official("AccountUser", answer.json())
    user_id = answer.json()["accountUserId"]

    answer = tenant.get("/account/user")
    assert answer.status_code == 200
    assert len(answer.json()) == 2
    assert_all_official("AccountUser", answer.json())
    answer = tenant.get(f"/account/user/{user_id}")
    assert_official("AccountUser", answer.json())
    answer = tenant.post(f"/account/user/{user_id}", json={"name": "Firma GmbH"})
    assert answer.status_code in (200, 204)
    if answer.status_code == 200:
        assert_official("AccountUser", answer.json())


def test_key_bodies_match_the_official_schema(tenant: Tenant) -> None:
    user = tenant.create_user("guest@example.com", "Guest")
    app_key = tenant.create_key(
        tenant.keypad_lock,
        name="Guest December",
        accountUserId=user,
        remoteAllowed=True,
        allowedFromDate="2026-12-01T00:00:00Z",
        allowedUntilDate="2027-01-31T23:00:00Z",
        allowedWeekDays=124,
        allowedFromTime=480,
        allowedUntilTime=1080,
    )
    keypad_code = tenant.create_key(
        tenant.keypad_lock, name="Cleaner", type=13, code=345678, remoteAllowed=False
    )
    assert app_key["syncState"] == "applied" and keypad_code["syncState"] == "applied"

    # a key waiting for an offline lock: pending, with an operationId
    tenant.runtime.settings.confirm_wait_seconds = 0.2
    put_offline(tenant, tenant.plain_lock)
    pending = tenant.create_key(
        tenant.plain_lock, name="Waiting", accountUserId=user, remoteAllowed=False
    )
    assert pending["syncState"] == "pending"
    assert "authId" not in pending
    assert isinstance(pending["operationId"], dict)
    assert_official("ObjectId", pending["operationId"])

    answer = tenant.get("/smartlock/auth")
    assert answer.status_code == 200
    keys = answer.json()
    assert sorted(k["type"] for k in keys) == [0, 0, 13]
    assert_all_official("SmartlockAuth", keys)
    for lock in (tenant.keypad_lock, tenant.plain_lock):
        assert_all_official("SmartlockAuth", tenant.keys(lock))
    for key in (app_key, keypad_code, pending):
        answer = tenant.get(f"/smartlock/{key['smartlockId']}/auth/{key['id']}")
        assert answer.status_code == 200
        assert_official("SmartlockAuth", answer.json())


def test_error_bodies_match_our_error_schema(
    client: TestClient, tenant: Tenant, document: dict[str, Any]
) -> None:
    validator = validator_for_document(document, "ErrorBody")
    read_only = {"Authorization": f"Bearer {tenant.token_with('smartlock.readOnly')}"}
    user = tenant.create_user("taken@example.com", "Taken")
    answers = {
        "no token": client.get("/smartlock"),
        "unknown token": client.get("/smartlock", headers={"Authorization": "Bearer kh_nope"}),
        "missing scope": client.get("/smartlock/auth", headers=read_only),
        "not json": tenant.put(
            "/account/user", content=b"{nope", headers={"Content-Type": "application/json"}
        ),
        "several problems": tenant.put(
            f"/smartlock/{tenant.plain_lock}/auth", json={"allowedWeekDays": "x"}
        ),
        "bad path parameter": tenant.get("/smartlock/abc"),
        "unknown user": tenant.get("/account/user/999999"),
        "conflict": tenant.put("/account/user", json={"email": "taken@example.com", "name": "T"}),
        "unknown lock": tenant.get("/smartlock/1/auth"),
        "no such endpoint": tenant.get("/smartlock/1/logbook/x"),
        "method not allowed": tenant.request("PATCH", "/smartlock"),
    }
    assert user
    statuses = set()
    for what, answer in answers.items():
        assert answer.status_code >= 400, (what, answer.status_code)
        body = answer.json()
        problems = [e.message for e in validator.iter_errors(body)]
        assert not problems, (what, body, problems)
        assert body["status"] == answer.status_code, what
        assert body["detailMessage"], what
        assert body["stackTrace"] == [] and body["suppressedExceptions"] == [], what
        statuses.add(answer.status_code)
    assert {400, 401, 403, 404, 405, 409} <= statuses
    several = answers["several problems"].json()
    assert several["problems"] and len(several["problems"]) >= 2
