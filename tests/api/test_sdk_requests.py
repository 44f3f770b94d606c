"""Every request the SDK builds is one api.nuki.io accepts: its path and verb exist in the
OFFICIAL Nuki Web API 3.9.0 spec, its query parameters are the ones the spec declares there,
and its body validates against the official request schema of that path and verb.

The requests are captured with an ``httpx.MockTransport`` standing in for api.nuki.io (a small
stateful fake answering in the official shapes). Only the emulator helpers leave the spec:
they are Keyhouse's own paths, checked to be absent from it.

``update_key``/``update_keys``: the official ``SmartlockAuthUpdate`` and
``SmartlockAuthMultiUpdate`` require ``name``, while Keyhouse updates are partial. So that a
partial update also works on api.nuki.io, the SDK sends the key's current name when the caller
omits it, read with one GET first (tested below). An explicit ``None`` is sent as JSON null,
which clears the field on Keyhouse; the official schema declares no nullable fields, so that
one form is a Keyhouse extension (also tested below, as such).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from keyhouse.client import AsyncClient, Client
from official_schemas import official_errors, official_spec

NUKI = "https://api.nuki.io"
LOCK_A, LOCK_B = 18298712180, 18298712181
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
CREATED = "2026-01-01T00:00:00.000Z"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("KEYHOUSE_TOKEN", "KEYHOUSE_URL", "NUKI_API_TOKEN", "NUKI_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KEYHOUSE_CONFIG", str(tmp_path / "config.toml"))


# --- the official spec: path templates, operations, request schemas ----------------------------


def _template_regex(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")


def official_operation(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    """The official (template, operation) for a concrete path and verb, or None."""
    paths = official_spec()["paths"]
    # literal paths first (/smartlock/auth before /smartlock/{smartlockId})
    for template in sorted(paths, key=lambda t: (t.count("{"), t)):
        if _template_regex(template).match(path) and method.lower() in paths[template]:
            return template, paths[template][method.lower()]
    return None


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        parts = node["$ref"].lstrip("#/").split("/")
        target: Any = official_spec()
        for part in parts:
            target = target[part]
        node = target
    return node


def request_schema(operation: dict[str, Any]) -> tuple[str | None, bool, dict[str, Any] | None]:
    """(official schema name, is an array of it, the raw schema) of the operation's body."""
    body = operation.get("requestBody")
    if body is None:
        return None, False, None
    schema = _resolve(body)["content"]["application/json"]["schema"]
    if schema.get("type") == "array":
        items = schema["items"]
        name = items["$ref"].rsplit("/", 1)[1] if "$ref" in items else None
        return name, True, schema
    return schema["$ref"].rsplit("/", 1)[1], False, schema


# --- a stand-in for api.nuki.io ---------------------------------------------------------------


class FakeNuki:
    """Records requests and answers them in the official shapes (with state for keys)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.keys: dict[str, dict[str, Any]] = {}
        self.ids = itertools.count(1)

    def _key(self, lock: int, body: dict[str, Any]) -> dict[str, Any]:
        key_id = f"{next(self.ids):024x}"
        fields = {k: v for k, v in body.items() if k != "smartlockIds"}
        key = {
            "id": key_id,
            "smartlockId": lock,
            "type": 0,
            "enabled": True,
            "lockCount": 0,
            "creationDate": CREATED,
            **fields,
        }
        self.keys[key_id] = key
        return key

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        method, path = request.method, request.url.path
        body = json.loads(request.content) if request.content else None
        if method == "GET" and path == "/smartlock/auth":
            return httpx.Response(200, json=list(self.keys.values()))
        if m := re.fullmatch(r"/smartlock/(\d+)/auth", path):
            lock = int(m[1])
            if method == "GET":
                return httpx.Response(
                    200, json=[k for k in self.keys.values() if k["smartlockId"] == lock]
                )
            self._key(lock, body)
            return httpx.Response(204)
        if method == "PUT" and path == "/smartlock/auth":
            for lock in body["smartlockIds"]:
                self._key(lock, body)
            return httpx.Response(204)
        if method == "GET" and (m := re.fullmatch(r"/smartlock/\d+/auth/(\w+)", path)):
            key = self.keys.get(m[1])
            if key is None:
                return httpx.Response(404, json={"detailMessage": "not found"})
            return httpx.Response(200, json=key)
        if path.startswith("/account/user") and method in ("PUT", "POST", "GET"):
            user = {
                "accountUserId": 7,
                "accountId": 1,
                "email": "guest@example.com",
                "name": "Guest",
                "creationDate": CREATED,
                "updateDate": CREATED,
                **(body or {}),
            }
            return httpx.Response(
                200, json=[user] if (method, path) == ("GET", "/account/user") else user
            )
        if method == "GET" and (m := re.fullmatch(r"/smartlock/(\d+)", path)):
            lock = {
                "smartlockId": int(m[1]),
                "accountId": 1,
                "type": 4,
                "authId": 1,
                "name": "Front Door",
                "favorite": False,
                "serverState": 0,
                "adminPinState": 0,
            }
            return httpx.Response(200, json=lock)
        if method == "GET":
            return httpx.Response(200, json=[])
        return httpx.Response(204)

    def sent(self) -> Iterator[tuple[str, str, Any]]:
        for request in self.requests:
            body = json.loads(request.content) if request.content else None
            yield request.method, request.url.path, body


@pytest.fixture
def nuki() -> FakeNuki:
    return FakeNuki()


@pytest.fixture
def sdk(nuki: FakeNuki) -> Iterator[Client]:
    with Client("token", NUKI, transport=httpx.MockTransport(nuki)) as client:
        yield client


def exercise(sdk: Client) -> None:
    """Every SDK method of the Nuki API, with every optional body field at least once."""
    window = {
        "allowed_from_date": datetime(2026, 12, 1, 9, tzinfo=timezone(timedelta(hours=1))),
        "allowed_until_date": "2027-01-31T23:00:00Z",
        "allowed_week_days": 124,
        "allowed_from_time": 480,
        "allowed_until_time": 1080,
    }
    sdk.list_smartlocks(auth_id=2, type=4)
    sdk.get_smartlock(LOCK_A)
    sdk.lock_action(LOCK_A, 3, option=2)
    sdk.lock_action(LOCK_A, 1)
    sdk.lock(LOCK_A)
    sdk.unlock(LOCK_A)
    sdk.sync(LOCK_A)
    sdk.list_users(email="guest@example.com", offset=0, limit=10)
    sdk.create_user("guest@example.com", "Guest")
    sdk.create_user("company@example.com", "Company", language="de", type=1)
    sdk.get_user(7)
    sdk.update_user(7, name="Guest 2", email="g2@example.com", language="fr")
    sdk.delete_user(7)
    sdk.list_keys()
    sdk.list_keys(LOCK_A, types=[0, 13])
    sdk.list_keys(types=[2], account_user_id=7)
    app = sdk.create_key(
        LOCK_A,
        name="App",
        account_user_id=7,
        remote_allowed=True,
        smart_actions_enabled=False,
        **window,
    )
    code = sdk.create_key(LOCK_A, name="Code", type=13, code=345678, remote_allowed=False)
    multi = sdk.create_key(
        [LOCK_A, LOCK_B], name="Fob", type=2, account_user_id=7, remote_allowed=False, **window
    )
    sdk.get_key(LOCK_A, app.id)
    sdk.update_key(LOCK_A, app.id, name="Renamed", enabled=False, remote_allowed=False, **window)
    sdk.update_key(LOCK_A, app.id, allowed_week_days=64)
    sdk.update_key(LOCK_A, code.id, code=456789, account_user_id=7)
    sdk.update_keys([{"id": multi[0].id, "name": "Fob A"}, {"id": multi[1].id, "enabled": False}])
    sdk.delete_key(LOCK_A, code.id)
    sdk.delete_keys([k.id for k in multi])
    sdk.logs()
    sdk.logs(
        LOCK_A,
        auth_id=app.id,
        account_user_id=7,
        from_date=datetime(2026, 12, 1, tzinfo=UTC),
        to_date="2026-12-31T00:00:00Z",
        action=1,
        id="0" * 24,
        limit=50,
    )


# --- the tests --------------------------------------------------------------------------------


def test_every_request_is_an_official_path_verb_and_query(sdk: Client, nuki: FakeNuki) -> None:
    exercise(sdk)
    assert len(nuki.requests) > 30
    for request in nuki.requests:
        assert request.url.host == "api.nuki.io"
        assert request.headers["authorization"] == "Bearer token"
        found = official_operation(request.method, request.url.path)
        assert found is not None, f"{request.method} {request.url.path} is not in the spec"
        _template, operation = found
        declared = {_resolve(p)["name"] for p in operation.get("parameters", [])}
        for name in request.url.params:
            assert name in declared, f"{request.method} {request.url.path}: ?{name} undeclared"


def test_every_body_validates_against_the_official_request_schema(
    sdk: Client, nuki: FakeNuki
) -> None:
    exercise(sdk)
    checked: dict[str, int] = {}
    for method, path, body in nuki.sent():
        template, operation = official_operation(method, path)  # type: ignore[misc]
        name, is_array, schema = request_schema(operation)
        if schema is None:
            assert body is None, f"{method} {path} sends a body the spec does not declare"
            continue
        assert body is not None, f"{method} {path} needs a body"
        if name is None:  # DELETE /smartlock/auth: an array of ids
            assert schema == {"type": "array", "items": {"type": "string"}}
            assert isinstance(body, list) and all(isinstance(i, str) for i in body)
            checked["ids"] = checked.get("ids", 0) + 1
            continue
        items = body if is_array else [body]
        assert isinstance(items, list) and items
        for item in items:
            problems = official_errors(name, item, request=True)
            assert not problems, f"{method} {template} {name}: {item}\n" + "\n".join(problems)
            for field in ("allowedFromDate", "allowedUntilDate"):
                if field in item:
                    assert DATE_RE.match(item[field]), item[field]
        checked[name] = checked.get(name, 0) + len(items)
    assert set(checked) == {
        "SmartlockAuthCreate",
        "SmartlocksAuthCreate",
        "SmartlockAuthUpdate",
        "SmartlockAuthMultiUpdate",
        "AccountUserCreate",
        "AccountUserUpdate",
        "SmartlockAction",
        "ids",
    }


def test_the_expected_official_schemas_are_used(sdk: Client, nuki: FakeNuki) -> None:
    exercise(sdk)
    used = {}
    for method, path, _body in nuki.sent():
        template, operation = official_operation(method, path)  # type: ignore[misc]
        name, is_array, _ = request_schema(operation)
        if name:
            used[(method, template)] = (name, is_array)
    assert used == {
        ("PUT", "/smartlock/{smartlockId}/auth"): ("SmartlockAuthCreate", False),
        ("PUT", "/smartlock/auth"): ("SmartlocksAuthCreate", False),
        ("POST", "/smartlock/{smartlockId}/auth/{id}"): ("SmartlockAuthUpdate", False),
        ("POST", "/smartlock/auth"): ("SmartlockAuthMultiUpdate", True),
        ("PUT", "/account/user"): ("AccountUserCreate", False),
        ("POST", "/account/user/{accountUserId}"): ("AccountUserUpdate", False),
        ("POST", "/smartlock/{smartlockId}/action"): ("SmartlockAction", False),
    }


def test_dates_are_sent_as_utc_instants(sdk: Client, nuki: FakeNuki) -> None:
    sdk.create_key(
        LOCK_A,
        name="Window",
        account_user_id=7,
        remote_allowed=False,
        allowed_from_date=datetime(2026, 12, 1, 9, tzinfo=timezone(timedelta(hours=1))),
        allowed_until_date="2027-01-31T23:00+00:00",
    )
    (_, _, body) = next(s for s in nuki.sent() if s[0] == "PUT")
    assert body["allowedFromDate"] == "2026-12-01T08:00:00Z"
    assert body["allowedUntilDate"] == "2027-01-31T23:00:00Z"
    with pytest.raises(ValueError, match="no time zone"):
        sdk.create_key(
            LOCK_A,
            name="x",
            account_user_id=7,
            remote_allowed=False,
            allowed_from_date=datetime(2026, 12, 1),
        )


def test_only_given_fields_are_sent(sdk: Client, nuki: FakeNuki) -> None:
    sdk.create_key(LOCK_A, name="Minimal", account_user_id=7, remote_allowed=False)
    (_, _, body) = next(s for s in nuki.sent() if s[0] == "PUT")
    assert body == {"name": "Minimal", "accountUserId": 7, "remoteAllowed": False}


def test_update_key_sends_the_current_name_when_omitted(sdk: Client, nuki: FakeNuki) -> None:
    key = sdk.create_key(LOCK_A, name="Guest", account_user_id=7, remote_allowed=False)
    nuki.requests.clear()
    sdk.update_key(LOCK_A, key.id, enabled=False)
    assert [(m, p) for m, p, _ in nuki.sent()] == [
        ("GET", f"/smartlock/{LOCK_A}/auth/{key.id}"),
        ("POST", f"/smartlock/{LOCK_A}/auth/{key.id}"),
    ]
    body = list(nuki.sent())[1][2]
    assert body == {"name": "Guest", "enabled": False}
    assert official_errors("SmartlockAuthUpdate", body, request=True) == []
    # without the SDK's help, the partial body would not be valid for api.nuki.io
    assert official_errors("SmartlockAuthUpdate", {"enabled": False}, request=True) != []

    nuki.requests.clear()
    sdk.update_key(LOCK_A, key.id, name="New name")
    assert [(m, b) for m, _, b in nuki.sent()] == [("POST", {"name": "New name"})]


def test_update_keys_sends_the_current_names_when_omitted(sdk: Client, nuki: FakeNuki) -> None:
    keys = sdk.create_key(
        [LOCK_A, LOCK_B], name="Fob", type=2, account_user_id=7, remote_allowed=False
    )
    nuki.requests.clear()
    sdk.update_keys([{"id": keys[0].id, "enabled": False}, {"id": keys[1].id, "name": "B"}])
    sent = list(nuki.sent())
    assert [(m, p) for m, p, _ in sent] == [("GET", "/smartlock/auth"), ("POST", "/smartlock/auth")]
    assert sent[1][2] == [
        {"id": keys[0].id, "name": "Fob", "enabled": False},
        {"id": keys[1].id, "name": "B"},
    ]
    for item in sent[1][2]:
        assert official_errors("SmartlockAuthMultiUpdate", item, request=True) == []


def test_explicit_none_is_sent_as_null_a_keyhouse_extension(sdk: Client, nuki: FakeNuki) -> None:
    key = sdk.create_key(LOCK_A, name="Guest", account_user_id=7, remote_allowed=False)
    nuki.requests.clear()
    sdk.update_key(LOCK_A, key.id, name="Guest", allowed_until_date=None)
    ((_, _, body),) = list(nuki.sent())
    assert body == {"name": "Guest", "allowedUntilDate": None}
    # The official schema has no nullable fields: clearing is Keyhouse's partial update.
    assert official_errors("SmartlockAuthUpdate", body, request=True) != []


def test_create_key_returns_the_new_keys_by_listing_before_and_after(
    sdk: Client, nuki: FakeNuki
) -> None:
    sdk.create_key(LOCK_A, name="Old", account_user_id=7, remote_allowed=False)
    nuki.requests.clear()
    key = sdk.create_key(LOCK_A, name="New", account_user_id=7, remote_allowed=False)
    assert key.name == "New" and key.smartlock_id == LOCK_A
    assert [(m, p) for m, p, _ in nuki.sent()] == [
        ("GET", f"/smartlock/{LOCK_A}/auth"),
        ("PUT", f"/smartlock/{LOCK_A}/auth"),
        ("GET", f"/smartlock/{LOCK_A}/auth"),
    ]
    nuki.requests.clear()
    keys = sdk.create_key([LOCK_B, LOCK_A], name="Both", type=13, code=345678, remote_allowed=False)
    assert [k.smartlock_id for k in keys] == [LOCK_B, LOCK_A]
    assert [(m, p) for m, p, _ in nuki.sent()] == [
        ("GET", "/smartlock/auth"),
        ("PUT", "/smartlock/auth"),
        ("GET", "/smartlock/auth"),
    ]
    assert list(nuki.sent())[1][2]["smartlockIds"] == [LOCK_B, LOCK_A]


def test_the_async_client_sends_the_same_requests(nuki: FakeNuki) -> None:
    sync_nuki = FakeNuki()
    with Client("token", NUKI, transport=httpx.MockTransport(sync_nuki)) as client:
        key = client.create_key(LOCK_A, name="K", account_user_id=7, remote_allowed=False)
        client.update_key(LOCK_A, key.id, enabled=False)
        client.lock_action(LOCK_A, 2)

    async def scenario() -> None:
        async with AsyncClient("token", NUKI, transport=httpx.MockTransport(nuki)) as client:
            key = await client.create_key(LOCK_A, name="K", account_user_id=7, remote_allowed=False)
            await client.update_key(LOCK_A, key.id, enabled=False)
            await client.lock_action(LOCK_A, 2)

    asyncio.run(scenario())
    assert list(nuki.sent()) == list(sync_nuki.sent())


def test_emulator_helpers_are_keyhouse_paths_outside_the_spec(sdk: Client, nuki: FakeNuki) -> None:
    nuki_answers = {
        "smartlockId": LOCK_A,
        "online": True,
        "latencyMs": 0,
        "fault": None,
        "state": 1,
        "keypad": True,
        "batteryCharge": 100,
        "doorState": 2,
        "auths": 1,
        "pendingOperations": 0,
    }
    decision = {"opened": True, "reason": "ok"}

    def answer(request: httpx.Request) -> httpx.Response:
        nuki.requests.append(request)
        is_door = request.url.path.endswith(("keypad", "app", "button"))
        return httpx.Response(200, json=decision if is_door else nuki_answers)

    with Client("token", NUKI, transport=httpx.MockTransport(answer)) as client:
        client.emulator_state(LOCK_A)
        client.set_emulator(LOCK_A, online=False, latency_ms=5, fault=None)
        client.keypad(LOCK_A, 345678, at=datetime(2026, 12, 7, 9, tzinfo=UTC))
        client.app_key(LOCK_A, 3, remote=True)
        client.button(LOCK_A)
    sent = list(nuki.sent())
    assert sent[1][2] == {"online": False, "latencyMs": 5, "fault": None}
    assert sent[2][2] == {"code": 345678, "at": "2026-12-07T09:00:00Z"}
    for method, path, _ in sent:
        assert path.startswith("/emulator/")
        assert official_operation(method, path) is None
