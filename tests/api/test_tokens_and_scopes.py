"""Bearer tokens (401), scopes (403 missing_scope), and how tokens are stored."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest

from conftest import Tenant

NOT_AUTHORIZED = "Your access token is not authorized"
USER_BODY = {"email": "guest@example.com", "name": "Guest"}


def call(tenant: Tenant, token: str, method: str, path: str, **kwargs: Any):
    return tenant.client.request(
        method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs
    )


def assert_missing_scope(answer, *scopes: str) -> None:
    assert answer.status_code == 403, answer.text
    error = answer.json()
    assert error["error"] == "missing_scope"
    assert error["status"] == 403
    assert error["stackTrace"] == []
    assert error["suppressedExceptions"] == []
    for scope in scopes:
        assert f"'{scope}'" in error["detailMessage"], error


# --- 401 ----------------------------------------------------------------------------------


def assert_unauthorized(answer) -> None:
    assert answer.status_code == 401, answer.text
    error = answer.json()
    assert error["detailMessage"].startswith(NOT_AUTHORIZED), error
    assert error["error"] == "unauthorized"
    assert error["status"] == 401
    assert error["stackTrace"] == []
    assert error["suppressedExceptions"] == []
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/smartlock"),
        ("GET", "/smartlock/1"),
        ("GET", "/smartlock/auth"),
        ("GET", "/smartlock/1/auth"),
        ("GET", "/account/user"),
        ("GET", "/account/user/1"),
        ("DELETE", "/account/user/1"),
        ("DELETE", "/smartlock/1/auth/65219648fe57075d71a6cb01"),
    ],
)
def test_no_authorization_header_is_401(tenant: Tenant, method: str, path: str) -> None:
    assert_unauthorized(tenant.client.request(method, path))


def test_unknown_token_is_401(tenant: Tenant) -> None:
    answer = call(tenant, "kh_" + "A" * 43, "GET", "/smartlock")
    assert_unauthorized(answer)
    assert "invalid_token" in answer.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    "header",
    ["Basic xyz", "Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "Token abc", "kh_abc"],
)
def test_malformed_authorization_header_is_401(tenant: Tenant, header: str) -> None:
    answer = tenant.client.get("/smartlock", headers={"Authorization": header})
    assert_unauthorized(answer)


def test_a_valid_token_under_the_basic_scheme_is_still_401(tenant: Tenant) -> None:
    answer = tenant.client.get("/smartlock", headers={"Authorization": f"Basic {tenant.token}"})
    assert_unauthorized(answer)


def test_bearer_scheme_is_case_insensitive(tenant: Tenant) -> None:
    answer = tenant.client.get("/smartlock", headers={"Authorization": f"bearer {tenant.token}"})
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/account/user", "{not json"),
        ("PUT", "/account/user", '{"emial": "x"}'),
        ("POST", "/account/user/1", "{not json"),
        ("PUT", "/smartlock/auth", "[broken"),
        ("POST", "/smartlock/auth", "{"),
        ("DELETE", "/smartlock/auth", "nope"),
        ("PUT", "/smartlock/1/auth", "{not json"),
        ("POST", "/smartlock/1/auth/65219648fe57075d71a6cb01", "{not json"),
    ],
)
def test_without_a_token_the_body_is_not_judged_401_comes_first(
    tenant: Tenant, method: str, path: str, body: str
) -> None:
    answer = tenant.client.request(
        method, path, content=body, headers={"Content-Type": "application/json"}
    )
    assert_unauthorized(answer)
    assert "warning" not in answer.headers


def test_unauthorized_write_stores_nothing(tenant: Tenant) -> None:
    answer = tenant.client.put("/account/user", json=USER_BODY)
    assert_unauthorized(answer)
    bad = call(tenant, "kh_unknown", "PUT", "/account/user", json=USER_BODY)
    assert_unauthorized(bad)
    assert tenant.get("/account/user").json() == []


# --- scopes -------------------------------------------------------------------------------


def test_read_only_token_reads_locks_but_not_keys_or_users(tenant: Tenant) -> None:
    token = tenant.token_with("smartlock.readOnly")
    listed = call(tenant, token, "GET", "/smartlock")
    assert listed.status_code == 200, listed.text
    assert len(listed.json()) == 2
    one = call(tenant, token, "GET", f"/smartlock/{tenant.plain_lock}")
    assert one.status_code == 200, one.text
    assert one.json()["smartlockId"] == tenant.plain_lock

    assert_missing_scope(call(tenant, token, "GET", "/smartlock/auth"), "smartlock.auth")
    assert_missing_scope(
        call(tenant, token, "GET", f"/smartlock/{tenant.plain_lock}/auth"), "smartlock.auth"
    )
    assert_missing_scope(call(tenant, token, "GET", "/account/user"), "account", "smartlock.auth")
    assert_missing_scope(call(tenant, token, "PUT", "/account/user", json=USER_BODY), "account")


def test_smartlock_scope_reads_locks(tenant: Tenant) -> None:
    token = tenant.token_with("smartlock")
    assert call(tenant, token, "GET", "/smartlock").status_code == 200
    assert_missing_scope(call(tenant, token, "GET", "/smartlock/auth"))


def test_auth_token_manages_keys_and_users_but_cannot_list_locks(tenant: Tenant) -> None:
    token = tenant.token_with("smartlock.auth")
    created = call(tenant, token, "PUT", "/account/user", json=USER_BODY)
    assert created.status_code == 200, created.text
    user_id = created.json()["accountUserId"]
    listed = call(tenant, token, "GET", "/account/user")
    assert [u["accountUserId"] for u in listed.json()] == [user_id]
    renamed = call(tenant, token, "POST", f"/account/user/{user_id}", json={"name": "Renamed"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Renamed"

    key = call(
        tenant,
        token,
        "PUT",
        f"/smartlock/{tenant.plain_lock}/auth",
        json={"name": "Guest key", "accountUserId": user_id, "remoteAllowed": False},
    )
    assert key.status_code == 204, key.text
    keys = call(tenant, token, "GET", "/smartlock/auth")
    assert keys.status_code == 200, keys.text
    assert [k["name"] for k in keys.json()] == ["Guest key"]

    assert_missing_scope(call(tenant, token, "GET", "/smartlock"), "smartlock")
    assert_missing_scope(call(tenant, token, "GET", f"/smartlock/{tenant.plain_lock}"))

    # Deleting a user deletes their keys: that needs 'account' as well.
    assert_missing_scope(call(tenant, token, "DELETE", f"/account/user/{user_id}"), "account")
    assert len(call(tenant, token, "GET", "/smartlock/auth").json()) == 1


def test_account_token_manages_users_but_not_keys(tenant: Tenant) -> None:
    token = tenant.token_with("account")
    created = call(tenant, token, "PUT", "/account/user", json=USER_BODY)
    assert created.status_code == 200, created.text
    user_id = created.json()["accountUserId"]
    got = call(tenant, token, "GET", f"/account/user/{user_id}")
    assert got.status_code == 200 and got.json()["email"] == "guest@example.com"
    updated = call(tenant, token, "POST", f"/account/user/{user_id}", json={"language": "de"})
    assert updated.status_code == 200 and updated.json()["language"] == "de"

    assert_missing_scope(call(tenant, token, "GET", "/smartlock/auth"), "smartlock.auth")
    assert_missing_scope(call(tenant, token, "GET", f"/smartlock/{tenant.plain_lock}/auth"))
    assert_missing_scope(
        call(
            tenant,
            token,
            "PUT",
            f"/smartlock/{tenant.plain_lock}/auth",
            json={"name": "Nope", "accountUserId": user_id, "remoteAllowed": False},
        )
    )
    assert_missing_scope(call(tenant, token, "GET", "/smartlock"))

    # Deleting a user deletes their keys: an 'account' token alone may not.
    refused = call(tenant, token, "DELETE", f"/account/user/{user_id}")
    assert_missing_scope(refused, "smartlock.auth")
    assert "deletes their keys" in refused.json()["detailMessage"]
    assert tenant.get(f"/account/user/{user_id}").status_code == 200
    both = tenant.token_with("account", "smartlock.auth")
    assert call(tenant, both, "DELETE", f"/account/user/{user_id}").status_code == 204
    assert tenant.get(f"/account/user/{user_id}").status_code == 404


def test_a_403_for_scope_changes_nothing(tenant: Tenant) -> None:
    user_id = tenant.create_user()
    key = tenant.create_key(
        tenant.plain_lock, name="Original", accountUserId=user_id, remoteAllowed=False
    )
    keys_before = tenant.keys()
    users_before = tenant.get("/account/user").json()
    device_before = tenant.runtime.link.auth_count(tenant.plain_lock)

    read_only = tenant.token_with("smartlock.readOnly")
    account_only = tenant.token_with("account")
    new_key = {"name": "Sneaky", "accountUserId": user_id, "remoteAllowed": True}
    attempts = [
        (read_only, "PUT", f"/smartlock/{tenant.plain_lock}/auth", new_key),
        (account_only, "PUT", f"/smartlock/{tenant.plain_lock}/auth", new_key),
        (account_only, "PUT", "/smartlock/auth", {**new_key, "smartlockIds": [tenant.plain_lock]}),
        (read_only, "POST", f"/smartlock/{tenant.plain_lock}/auth/{key['id']}", {"name": "X"}),
        (account_only, "POST", "/smartlock/auth", [{"id": key["id"], "enabled": False}]),
        (read_only, "DELETE", f"/smartlock/{tenant.plain_lock}/auth/{key['id']}", None),
        (account_only, "DELETE", "/smartlock/auth", [key["id"]]),
        (read_only, "PUT", "/account/user", {"email": "new@example.com", "name": "New"}),
        (read_only, "POST", f"/account/user/{user_id}", {"name": "Changed"}),
        (read_only, "DELETE", f"/account/user/{user_id}", None),
    ]
    for token, method, path, body in attempts:
        kwargs = {} if body is None else {"json": body}
        assert_missing_scope(call(tenant, token, method, path, **kwargs))

    assert tenant.keys() == keys_before
    assert tenant.get("/account/user").json() == users_before
    assert tenant.runtime.link.auth_count(tenant.plain_lock) == device_before


def test_a_token_with_several_scopes_gets_each(tenant: Tenant) -> None:
    token = tenant.token_with("smartlock.readOnly", "account")
    assert call(tenant, token, "GET", "/smartlock").status_code == 200
    assert call(tenant, token, "GET", "/account/user").status_code == 200
    assert_missing_scope(call(tenant, token, "GET", "/smartlock/auth"))


# --- how tokens are stored ----------------------------------------------------------------


def database_bytes(tenant: Tenant) -> bytes:
    path = tenant.runtime.settings.data / "keyhouse.db"
    assert path.exists()
    data = path.read_bytes()
    for suffix in ("-wal", "-journal"):
        extra = path.with_name(path.name + suffix)
        if extra.exists():
            data += extra.read_bytes()
    return data


@pytest.mark.sqlite_only("it reads the SQLite file's bytes")
def test_tokens_are_stored_only_as_sha256_hashes(tenant: Tenant) -> None:
    extra = tenant.token_with("account")
    stored = database_bytes(tenant)
    for token in (tenant.token, extra):
        assert token.encode() not in stored
        assert token.removeprefix("kh_").encode() not in stored
        assert hashlib.sha256(token.encode()).hexdigest().encode() in stored
    # and the stored hash still authenticates the raw token
    assert call(tenant, extra, "GET", "/account/user").status_code == 200


def test_tokens_carry_at_least_128_random_bits(tenant: Tenant) -> None:
    tokens = [tenant.token, tenant.token_with("smartlock"), tenant.token_with("account")]
    for token in tokens:
        assert token.startswith("kh_")
        secret = token.removeprefix("kh_")
        assert len(secret) >= 43, token
        assert re.fullmatch(r"[A-Za-z0-9_-]+", secret), token
    assert len(set(tokens)) == len(tokens)
