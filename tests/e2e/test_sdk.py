"""The SDK (`keyhouse.client`) against a real `keyhouse serve`: the seed workflow, multi-lock
keys, the async client, typed errors, sync failures and token/URL resolution.

Retries are tested against an ``httpx.MockTransport`` standing in for a flaky api.nuki.io (a
server outside the machine, whose failures a local Keyhouse cannot produce on demand).
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from conftest import LiveServer
from keyhouse.client import (
    AsyncClient,
    AuthError,
    Client,
    Conflict,
    ConnectionFailed,
    KeyhouseClientError,
    NotFound,
    RateLimited,
    ServerError,
    SmartlockAuth,
    SyncFailed,
    ValidationError,
    load_profile,
    save_profile,
)

FROM = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
UNTIL = datetime(2027, 1, 31, 23, 0, tzinfo=UTC)
WINDOW = {
    "allowed_from_date": FROM,
    "allowed_until_date": UNTIL,
    "allowed_week_days": 124,
    "allowed_from_time": 480,
    "allowed_until_time": 1080,
}
ENV_NAMES = ("KEYHOUSE_TOKEN", "KEYHOUSE_URL", "NUKI_API_TOKEN", "NUKI_API_URL", "KEYHOUSE_PROFILE")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No token/URL from the developer's environment, and a config file in tmp."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "config" / "config.toml"
    monkeypatch.setenv("KEYHOUSE_CONFIG", str(path))
    return path


@pytest.fixture
def client(live_server: LiveServer) -> Client:
    with Client(live_server.token, live_server.url) as sdk:
        yield sdk


def keypad_lock(client: Client) -> int:
    return next(
        lock.smartlock_id
        for lock in client.list_smartlocks()
        if lock.config is not None and lock.config.keypad_paired
    )


def window_of(key: SmartlockAuth) -> dict[str, object]:
    return {name: getattr(key, name) for name in WINDOW}


# --- the seed workflow ------------------------------------------------------------------------


def test_seed_workflow_with_the_sdk(client: Client, live_server: LiveServer) -> None:
    locks = client.list_smartlocks()
    assert sorted(lock.smartlock_id for lock in locks) == sorted(live_server.lock_ids)
    lock_id = live_server.lock_ids[0]
    assert client.get_smartlock(lock_id).smartlock_id == lock_id
    assert [lock.smartlock_id for lock in client.list_smartlocks(type=4)] != []

    user = client.create_user("guest@example.com", "Guest", language="en")
    assert user.account_user_id > 0 and user.email == "guest@example.com"
    assert [u.account_user_id for u in client.list_users(email="GUEST@example.com")] == [
        user.account_user_id
    ]
    assert client.get_user(user.account_user_id).name == "Guest"

    key = client.create_key(
        lock_id,
        name="December guest",
        account_user_id=user.account_user_id,
        remote_allowed=False,
        **WINDOW,
    )
    assert isinstance(key, SmartlockAuth)
    assert key.name == "December guest" and key.smartlock_id == lock_id
    assert window_of(key) == WINDOW

    # filters: by type and by user, on the lock and account-wide
    assert [k.id for k in client.list_keys(lock_id, types=[0])] == [key.id]
    assert client.list_keys(lock_id, types=[13]) == []
    assert [k.id for k in client.list_keys(account_user_id=user.account_user_id)] == [key.id]
    assert [k.id for k in client.list_keys(lock_id, account_user_id=user.account_user_id)] == [
        key.id
    ]
    assert client.list_keys(lock_id, account_user_id=-1) == []

    applied = client.wait_for_key(lock_id, key.id, timeout=30)
    assert applied.sync_state == "applied"
    assert applied.auth_id is not None and applied.auth_id >= 2

    # a partial update (a rename) keeps the time window
    client.update_key(lock_id, key.id, name="December guest (extended)")
    renamed = client.wait_for_key(lock_id, key.id)
    assert renamed.name == "December guest (extended)"
    assert window_of(renamed) == WINDOW

    # without a name, the SDK sends the current one: nothing else changes
    client.update_key(lock_id, key.id, enabled=False)
    disabled = client.wait_for_key(lock_id, key.id)
    assert disabled.enabled is False
    assert disabled.name == "December guest (extended)"
    assert window_of(disabled) == WINDOW

    # an explicit None clears a field (Keyhouse's partial update)
    client.update_key(lock_id, key.id, allowed_until_date=None)
    cleared = client.wait_for_key(lock_id, key.id)
    assert cleared.allowed_until_date is None and cleared.allowed_from_date == FROM

    assert client.update_user(user.account_user_id, name="Guest (flat 2)").name == (
        "Guest (flat 2)"
    )

    client.delete_key(lock_id, key.id)
    client.wait_until_deleted(lock_id, key.id)
    with pytest.raises(NotFound):
        client.get_key(lock_id, key.id)

    client.delete_user(user.account_user_id)
    with pytest.raises(NotFound):
        client.get_user(user.account_user_id)


def test_multi_lock_create_update_and_delete(client: Client, live_server: LiveServer) -> None:
    user = client.create_user("cleaner@example.com", "Cleaner")
    lock_ids = sorted(live_server.lock_ids)
    keys = client.create_key(
        lock_ids,
        name="Cleaner",
        account_user_id=user.account_user_id,
        remote_allowed=False,
        allowed_week_days=64,
        allowed_from_time=540,
        allowed_until_time=720,
    )
    assert isinstance(keys, list)
    assert [k.smartlock_id for k in keys] == lock_ids
    assert len({k.id for k in keys}) == 2
    for key in keys:
        applied = client.wait_for_key(key.smartlock_id, key.id)
        assert applied.sync_state == "applied" and applied.auth_id is not None
        assert applied.allowed_week_days == 64

    # bulk update without names: the SDK sends the current names along
    client.update_keys([{"id": k.id, "enabled": False} for k in keys])
    for key in keys:
        updated = client.wait_for_key(key.smartlock_id, key.id)
        assert updated.enabled is False and updated.name == "Cleaner"
        assert updated.allowed_from_time == 540

    client.delete_keys([k.id for k in keys])
    for key in keys:
        client.wait_until_deleted(key.smartlock_id, key.id)
    assert client.list_keys(account_user_id=user.account_user_id) == []


def test_keypad_code_opens_the_door_and_is_logged(client: Client) -> None:
    lock_id = keypad_lock(client)
    code = client.create_key(
        lock_id, name="Cleaner", type=13, code=345678, remote_allowed=False, **WINDOW
    )
    applied = client.wait_for_key(lock_id, code.id)
    assert applied.type == 13 and applied.code == 345678

    inside = client.keypad(lock_id, 345678, at=datetime(2026, 12, 7, 9, 0, tzinfo=UTC))
    assert inside.opened, inside.reason
    outside = client.keypad(lock_id, 345678, at="2026-12-07T18:30:00Z")
    assert not outside.opened

    entries = client.logs(lock_id, auth_id=code.id)
    assert len(entries) == 2 and all(e.auth_id == code.id for e in entries)
    assert client.logs(lock_id, limit=1)[0].id == entries[0].id
    assert client.logs(from_date=datetime(2030, 1, 1, tzinfo=UTC)) == []

    client.lock(lock_id)
    client.unlock(lock_id)
    client.lock_action(lock_id, 2)
    client.sync(lock_id)
    assert client.emulator_state(lock_id).state == 1


# --- the async client -------------------------------------------------------------------------


def test_async_client_basics(live_server: LiveServer) -> None:
    async def scenario() -> None:
        async with AsyncClient(live_server.token, live_server.url) as sdk:
            locks = await sdk.list_smartlocks()
            assert sorted(lock.smartlock_id for lock in locks) == sorted(live_server.lock_ids)
            lock_id = live_server.lock_ids[0]
            user = await sdk.create_user("async@example.com", "Async Guest")
            key = await sdk.create_key(
                lock_id,
                name="Async key",
                account_user_id=user.account_user_id,
                remote_allowed=False,
                **WINDOW,
            )
            applied = await sdk.wait_for_key(lock_id, key.id)
            assert applied.sync_state == "applied" and applied.auth_id is not None
            await sdk.update_key(lock_id, key.id, enabled=False)
            updated = await sdk.wait_for_key(lock_id, key.id)
            assert updated.enabled is False and window_of(updated) == WINDOW
            assert [k.id for k in await sdk.list_keys(lock_id, types=0)] == [key.id]
            await sdk.delete_key(lock_id, key.id)
            await sdk.wait_until_deleted(lock_id, key.id)
            with pytest.raises(NotFound):
                await sdk.get_key(lock_id, key.id)
            await sdk.delete_user(user.account_user_id)

        async with AsyncClient("kh_unknown", live_server.url) as stranger:
            with pytest.raises(AuthError):
                await stranger.list_smartlocks()

    asyncio.run(scenario())


# --- typed errors -----------------------------------------------------------------------------


def test_typed_errors(client: Client, live_server: LiveServer) -> None:
    with Client("kh_not_a_token", live_server.url) as stranger, pytest.raises(AuthError) as auth:
        stranger.list_smartlocks()
    assert auth.value.status == 401
    assert auth.value.message.startswith("Your access token is not authorized")
    assert auth.value.request_id

    with pytest.raises(NotFound) as missing:
        client.get_smartlock(123456)
    assert missing.value.status == 404 and missing.value.field == "smartlockId"
    with pytest.raises(NotFound) as no_key:
        client.get_key(live_server.lock_ids[0], "0" * 24)
    assert no_key.value.field == "id"
    with pytest.raises(NotFound) as no_user:
        client.get_user(987654)
    assert no_user.value.field == "accountUserId"

    user = client.create_user("typed@example.com", "Typed")
    with pytest.raises(ValidationError) as invalid:
        client.create_key(
            live_server.lock_ids[0],
            name="x" * 40,
            account_user_id=user.account_user_id,
            remote_allowed=False,
        )
    assert invalid.value.status == 400
    assert (invalid.value.field, invalid.value.rule) == ("name", "max_length")
    assert invalid.value.request_id and invalid.value.body["error"]

    with pytest.raises(Conflict):
        client.create_user("TYPED@example.com", "Again")

    lock_id = keypad_lock(client)
    client.create_key(lock_id, name="Code", type=13, code=456789, remote_allowed=False)
    with pytest.raises(Conflict) as duplicate:
        client.create_key(lock_id, name="Code 2", type=13, code=456789, remote_allowed=False)
    assert duplicate.value.status == 409
    assert (duplicate.value.field, duplicate.value.rule) == ("code", "unique_on_lock")


def test_wait_for_key_raises_sync_failed(client: Client) -> None:
    lock_id = keypad_lock(client)
    assert client.set_emulator(lock_id, fault="codeExists").fault == "codeExists"
    try:
        code = client.create_key(
            lock_id, name="Refused", type=13, code=567891, remote_allowed=False
        )
        with pytest.raises(SyncFailed) as failed:
            client.wait_for_key(lock_id, code.id, timeout=20)
        assert failed.value.key.sync_state == "failed"
        assert failed.value.error and "2A" in failed.value.error
    finally:
        assert client.set_emulator(lock_id, fault=None).fault is None


# --- token and URL resolution -----------------------------------------------------------------


def test_token_and_url_from_the_environment(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYHOUSE_TOKEN", live_server.token)
    monkeypatch.setenv("KEYHOUSE_URL", live_server.url)
    with Client() as sdk:
        assert (sdk.token, sdk.base_url) == (live_server.token, live_server.url)
        assert len(sdk.list_smartlocks()) == 2
    # an argument wins over the environment
    with Client(token="kh_wrong") as sdk, pytest.raises(AuthError):
        sdk.list_smartlocks()

    monkeypatch.delenv("KEYHOUSE_TOKEN")
    monkeypatch.delenv("KEYHOUSE_URL")
    monkeypatch.setenv("NUKI_API_TOKEN", live_server.token)
    monkeypatch.setenv("NUKI_API_URL", live_server.url + "/")
    with Client() as sdk:
        assert sdk.base_url == live_server.url
        assert len(sdk.list_smartlocks()) == 2

    monkeypatch.delenv("NUKI_API_TOKEN")
    monkeypatch.delenv("NUKI_API_URL")
    with pytest.raises(KeyhouseClientError, match="KEYHOUSE_TOKEN"):
        Client()
    with Client(token="kh_x") as sdk:
        assert sdk.base_url == "http://127.0.0.1:8080"


def test_token_and_url_from_a_profile(
    live_server: LiveServer, clean_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_profile() is None
    path = save_profile("live", live_server.url, live_server.token)
    assert path == clean_environment and path.exists()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    save_profile("other", "http://127.0.0.1:9", 'kh_"quoted"\\', make_default=False)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    default = load_profile(None)
    assert default is not None and (default.name, default.url, default.token) == (
        "live",
        live_server.url,
        live_server.token,
    )
    other = load_profile("other")
    assert other is not None and other.token == 'kh_"quoted"\\'
    assert load_profile("nobody") is None

    with Client() as sdk:
        assert (sdk.token, sdk.base_url) == (live_server.token, live_server.url)
        assert len(sdk.list_smartlocks()) == 2
    with Client(profile="other") as sdk:
        assert sdk.base_url == "http://127.0.0.1:9"
    # the environment wins over the profile, per setting
    monkeypatch.setenv("KEYHOUSE_TOKEN", "kh_from_env")
    with Client() as sdk:
        assert (sdk.token, sdk.base_url) == ("kh_from_env", live_server.url)


# --- retries, against a stand-in for a flaky api.nuki.io --------------------------------------

NUKI = "https://api.nuki.io"


class FlakyNuki:
    """Answers the queued responses in order, and records each request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def nuki_client(flaky: FlakyNuki) -> Client:
    return Client("token", NUKI, transport=httpx.MockTransport(flaky), retry_backoff=0.01)


def test_get_is_retried_on_503_and_connection_errors_then_succeeds() -> None:
    flaky = FlakyNuki(
        httpx.Response(503, text="busy"),
        httpx.ConnectError("connection refused"),
        httpx.Response(502, text="<html><body>502 Bad Gateway</body></html>"),
        httpx.Response(200, json=[]),
    )
    with nuki_client(flaky) as sdk:
        assert sdk.list_smartlocks() == []
    assert [r.method for r in flaky.requests] == ["GET"] * 4


def test_get_gives_up_after_three_retries() -> None:
    flaky = FlakyNuki(
        *[httpx.Response(503, text="<h1>503</h1>", headers={"X-Request-Id": "r-1"})] * 4
    )
    with nuki_client(flaky) as sdk, pytest.raises(ServerError) as failed:
        sdk.get_smartlock(1)
    assert len(flaky.requests) == 4
    assert failed.value.status == 503 and failed.value.request_id == "r-1"
    assert failed.value.message == "<h1>503</h1>" and failed.value.body == "<h1>503</h1>"

    down = FlakyNuki(*[httpx.ConnectError("down")] * 4)
    with nuki_client(down) as sdk, pytest.raises(ConnectionFailed):
        sdk.list_smartlocks()
    assert len(down.requests) == 4


def test_post_put_delete_are_not_retried_on_503_or_connection_errors() -> None:
    flaky = FlakyNuki(
        httpx.Response(503, text="busy"),
        httpx.ConnectError("refused"),
        httpx.Response(502, json={"detailMessage": "upstream"}),
    )
    with nuki_client(flaky) as sdk:
        with pytest.raises(ServerError):
            sdk.lock(1)
        with pytest.raises(ConnectionFailed):
            sdk.delete_key(1, "a" * 24)
        with pytest.raises(ServerError) as failed:
            sdk.create_user("a@example.com", "A")
    assert failed.value.message == "upstream"
    assert [r.method for r in flaky.requests] == ["POST", "DELETE", "PUT"]


def test_429_is_retried_on_any_method_honouring_retry_after() -> None:
    user = {
        "accountUserId": 7,
        "accountId": 1,
        "email": "a@example.com",
        "name": "A",
        "creationDate": "2026-01-01T00:00:00.000Z",
        "updateDate": "2026-01-01T00:00:00.000Z",
    }
    flaky = FlakyNuki(
        httpx.Response(429, headers={"Retry-After": "0"}, json={"detailMessage": "slow down"}),
        httpx.Response(200, json=user),
        httpx.Response(429, headers={"Retry-After": "0"}),
        httpx.Response(204),
    )
    with nuki_client(flaky) as sdk:
        assert sdk.create_user("a@example.com", "A").account_user_id == 7
        sdk.unlock(1)
    assert [r.method for r in flaky.requests] == ["PUT", "PUT", "POST", "POST"]
    assert json.loads(flaky.requests[0].content) == json.loads(flaky.requests[1].content)

    # a Retry-After beyond the client's patience is not waited for
    patient = FlakyNuki(httpx.Response(429, headers={"Retry-After": "3600"}))
    with nuki_client(patient) as sdk, pytest.raises(RateLimited) as limited:
        sdk.lock(1)
    assert limited.value.retry_after == 3600 and len(patient.requests) == 1


def test_async_client_retries_like_the_sync_one() -> None:
    flaky = FlakyNuki(httpx.Response(503), httpx.Response(200, json=[]), httpx.Response(503))

    async def scenario() -> None:
        transport = httpx.MockTransport(flaky)
        async with AsyncClient("t", NUKI, transport=transport, retry_backoff=0.01) as sdk:
            assert await sdk.list_users() == []
            with pytest.raises(ServerError):
                await sdk.sync(1)

    asyncio.run(scenario())
    assert [r.method for r in flaky.requests] == ["GET", "GET", "POST"]
