"""Tenant isolation: another account's token can neither read nor change this account's rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from conftest import Tenant


@dataclass
class World:
    """What ``tenant`` owns, and a snapshot to show a refused request changed nothing."""

    user_id: int
    user_email: str
    key: dict[str, Any]
    code_key: dict[str, Any]


@pytest.fixture
def world(tenant: Tenant, other_tenant: Tenant) -> World:
    user_id = tenant.create_user("private@example.com", "Private Person")
    key = tenant.create_key(
        tenant.plain_lock, name="Private key", accountUserId=user_id, remoteAllowed=False
    )
    code_key = tenant.create_key(
        tenant.keypad_lock, name="Private code", type=13, code=357246, remoteAllowed=False
    )
    other_tenant.create_user("their@example.org", "Their User")
    return World(user_id, "private@example.com", key, code_key)


def state(tenant: Tenant) -> dict[str, Any]:
    """Everything of an account as the API and the locks show it."""
    return {
        "users": tenant.get("/account/user").json(),
        "keys": tenant.keys(),
        "devices": [
            tenant.runtime.link.auth_count(tenant.plain_lock),
            tenant.runtime.link.auth_count(tenant.keypad_lock),
        ],
    }


def assert_refused(answer, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert error["status"] == status
    assert error["stackTrace"] == []
    assert error["suppressedExceptions"] == []
    return error


def leaks(answer, *secrets: str) -> bool:
    return any(secret in answer.text for secret in secrets)


NEVER_ID = "0123456789abcdef01234567"
SECRETS = ("Private key", "Private code", "Private Person", "private@example.com", "357246")


# --- smartlocks ---------------------------------------------------------------------------


def test_lock_list_shows_only_own_locks(tenant: Tenant, other_tenant: Tenant, world: World) -> None:
    theirs = other_tenant.get("/smartlock").json()
    assert {lock["smartlockId"] for lock in theirs} == {
        other_tenant.keypad_lock,
        other_tenant.plain_lock,
    }
    assert all(lock["accountId"] == other_tenant.account_id for lock in theirs)
    assert other_tenant.get("/smartlock", params={"type": 4}).json() == theirs


def test_get_foreign_lock_is_404(tenant: Tenant, other_tenant: Tenant, world: World) -> None:
    for lock_id in (tenant.keypad_lock, tenant.plain_lock):
        answer = other_tenant.get(f"/smartlock/{lock_id}")
        assert_refused(answer, 404)
        assert "Front Door" not in answer.text and "Flat 2" not in answer.text


# --- keys on one lock ---------------------------------------------------------------------


def test_list_keys_of_a_foreign_lock_is_403(
    tenant: Tenant, other_tenant: Tenant, world: World
) -> None:
    for lock_id in (tenant.keypad_lock, tenant.plain_lock):
        answer = other_tenant.get(f"/smartlock/{lock_id}/auth")
        error = assert_refused(answer, 403)
        assert str(lock_id) in error["detailMessage"]
        assert not leaks(answer, *SECRETS)


def test_create_key_on_a_foreign_lock_is_403_and_creates_nothing(
    tenant: Tenant, other_tenant: Tenant, world: World
) -> None:
    before, theirs_before = state(tenant), state(other_tenant)
    their_user = other_tenant.get("/account/user").json()[0]["accountUserId"]
    answer = other_tenant.put(
        f"/smartlock/{tenant.plain_lock}/auth",
        json={"name": "Intruder", "accountUserId": their_user, "remoteAllowed": True},
    )
    assert_refused(answer, 403)
    code = other_tenant.put(
        f"/smartlock/{tenant.keypad_lock}/auth",
        json={"name": "Intruder", "type": 13, "code": 468135, "remoteAllowed": False},
    )
    assert_refused(code, 403)
    assert state(tenant) == before
    assert state(other_tenant) == theirs_before


def test_get_foreign_key_is_403(tenant: Tenant, other_tenant: Tenant, world: World) -> None:
    answer = other_tenant.get(f"/smartlock/{tenant.plain_lock}/auth/{world.key['id']}")
    assert_refused(answer, 403)
    assert not leaks(answer, *SECRETS)
    # Naming their own lock with the foreign key id answers exactly as for an id that never
    # existed: no way to learn that the key exists elsewhere.
    own_lock = other_tenant.get(f"/smartlock/{other_tenant.plain_lock}/auth/{world.key['id']}")
    never = other_tenant.get(f"/smartlock/{other_tenant.plain_lock}/auth/{NEVER_ID}")
    assert own_lock.status_code == never.status_code == 404, own_lock.text
    assert not leaks(own_lock, *SECRETS)
    assert own_lock.json()["error"] == never.json()["error"]


def test_update_foreign_key_is_403_and_changes_nothing(
    tenant: Tenant, other_tenant: Tenant, world: World
) -> None:
    before = state(tenant)
    answer = other_tenant.post(
        f"/smartlock/{tenant.plain_lock}/auth/{world.key['id']}",
        json={"name": "Hijacked", "enabled": False},
    )
    assert_refused(answer, 403)
    via_own_lock = other_tenant.post(
        f"/smartlock/{other_tenant.plain_lock}/auth/{world.key['id']}",
        json={"name": "Hijacked"},
    )
    assert via_own_lock.status_code == 404, via_own_lock.text
    assert state(tenant) == before


def test_delete_foreign_key_is_403_and_deletes_nothing(
    tenant: Tenant, other_tenant: Tenant, world: World
) -> None:
    before = state(tenant)
    answer = other_tenant.delete(f"/smartlock/{tenant.plain_lock}/auth/{world.key['id']}")
    assert_refused(answer, 403)
    via_own_lock = other_tenant.delete(
        f"/smartlock/{other_tenant.plain_lock}/auth/{world.key['id']}"
    )
    assert via_own_lock.status_code == 404, via_own_lock.text
    assert state(tenant) == before


# --- keys across locks --------------------------------------------------------------------


def test_key_list_across_locks_shows_no_foreign_keys(
    tenant: Tenant, other_tenant: Tenant, world: World
) -> None:
    answer = other_tenant.get("/smartlock/auth")
    assert answer.status_code == 200, answer.text
    assert answer.json() == []
    filtered = other_tenant.get("/smartlock/auth", params={"accountUserId": world.user_id})
    assert filtered.status_code == 200 and filtered.json() == []
    by_type = other_tenant.get("/smartlock/auth", params={"types": "0,13"})
    assert by_type.status_code == 200 and by_type.json() == []
    own_keys = tenant.keys()
    assert {k["id"] for k in own_keys} == {world.key["id"], world.code_key["id"]}


def test_bulk_update_with_a_foreign_key_id_is_403_and_changes_nothing(
    tenant: Tenant, other_tenant: Tenant, world: World
) -> None:
    theirs_user = other_tenant.get("/account/user").json()[0]["accountUserId"]
    their_key = other_tenant.create_key(
        other_tenant.plain_lock, name="Theirs", accountUserId=theirs_user, remoteAllowed=False
    )
    before, theirs_before = state(tenant), state(other_tenant)
    answer = other_tenant.post(
        "/smartlock/auth",
        json=[
            {"id": their_key["id"], "name": "Theirs renamed"},
            {"id": world.key["id"], "enabled": False, "name": "Hijacked"},
        ],
    )
    error = assert_refused(answer, 403)
    assert error["field"] == "id"
    assert state(tenant) == before
    # all or nothing: their own key in the same request was not renamed either
    assert state(other_tenant) == theirs_before


def test_bulk_delete_with_a_foreign_key_id_is_403_and_deletes_nothing(
    tenant: Tenant, other_tenant: Tenant, world: World
) -> None:
    theirs_user = other_tenant.get("/account/user").json()[0]["accountUserId"]
    their_key = other_tenant.create_key(
        other_tenant.plain_lock, name="Theirs", accountUserId=theirs_user, remoteAllowed=False
    )
    before, theirs_before = state(tenant), state(other_tenant)
    answer = other_tenant.delete("/smartlock/auth", json=[their_key["id"], world.key["id"]])
    assert_refused(answer, 403)
    alone = other_tenant.delete("/smartlock/auth", json=[world.code_key["id"]])
    assert_refused(alone, 403)
    assert state(tenant) == before
    assert state(other_tenant) == theirs_before


def test_bulk_create_naming_a_foreign_lock_is_404_and_creates_nothing_anywhere(
    tenant: Tenant, other_tenant: Tenant, world: World
) -> None:
    theirs_user = other_tenant.get("/account/user").json()[0]["accountUserId"]
    before, theirs_before = state(tenant), state(other_tenant)
    answer = other_tenant.put(
        "/smartlock/auth",
        json={
            "name": "Everywhere",
            "accountUserId": theirs_user,
            "remoteAllowed": False,
            "smartlockIds": [other_tenant.plain_lock, tenant.plain_lock],
        },
    )
    error = assert_refused(answer, 404)
    assert error["field"] == "smartlockIds"
    assert str(tenant.plain_lock) in error["detailMessage"]
    assert state(tenant) == before
    assert state(other_tenant) == theirs_before


# --- account users ------------------------------------------------------------------------


def test_foreign_user_cannot_be_read_changed_or_deleted(
    tenant: Tenant, other_tenant: Tenant, world: World
) -> None:
    before = state(tenant)
    path = f"/account/user/{world.user_id}"
    got = other_tenant.get(path)
    error = assert_refused(got, 404)
    assert str(world.user_id) in error["detailMessage"]
    assert not leaks(got, *SECRETS)
    assert_refused(other_tenant.post(path, json={"name": "Hijacked"}), 404)
    assert_refused(other_tenant.post(path, json={"email": "evil@example.org"}), 404)
    assert_refused(other_tenant.delete(path), 404)
    assert state(tenant) == before


def test_user_list_never_shows_foreign_users(
    tenant: Tenant, other_tenant: Tenant, world: World
) -> None:
    found = other_tenant.get("/account/user", params={"email": world.user_email})
    assert found.status_code == 200 and found.json() == []
    everyone = other_tenant.get("/account/user", params={"limit": 1000}).json()
    assert [u["email"] for u in everyone] == ["their@example.org"]
    assert all(u["accountId"] == other_tenant.account_id for u in everyone)


def test_key_for_another_accounts_user_is_400_on_accountUserId(
    tenant: Tenant, other_tenant: Tenant, world: World
) -> None:
    before, theirs_before = state(tenant), state(other_tenant)
    answer = other_tenant.put(
        f"/smartlock/{other_tenant.plain_lock}/auth",
        json={"name": "Borrowed user", "accountUserId": world.user_id, "remoteAllowed": False},
    )
    error = assert_refused(answer, 400)
    assert error["field"] == "accountUserId"
    bulk = other_tenant.put(
        "/smartlock/auth",
        json={
            "name": "Borrowed user",
            "accountUserId": world.user_id,
            "remoteAllowed": False,
            "smartlockIds": [other_tenant.plain_lock],
        },
    )
    assert assert_refused(bulk, 400)["field"] == "accountUserId"
    assert state(tenant) == before
    assert state(other_tenant) == theirs_before


def test_moving_an_own_key_to_a_foreign_user_is_400(
    tenant: Tenant, other_tenant: Tenant, world: World
) -> None:
    theirs_user = other_tenant.get("/account/user").json()[0]["accountUserId"]
    their_key = other_tenant.create_key(
        other_tenant.plain_lock, name="Theirs", accountUserId=theirs_user, remoteAllowed=False
    )
    theirs_before = state(other_tenant)
    answer = other_tenant.post(
        f"/smartlock/{other_tenant.plain_lock}/auth/{their_key['id']}",
        json={"accountUserId": world.user_id},
    )
    assert assert_refused(answer, 400)["field"] == "accountUserId"
    assert state(other_tenant) == theirs_before


def test_same_email_may_exist_in_both_accounts(tenant: Tenant, other_tenant: Tenant) -> None:
    mine = tenant.create_user("shared@example.com", "Mine")
    theirs = other_tenant.create_user("shared@example.com", "Theirs")
    assert mine != theirs
    assert [u["name"] for u in tenant.get("/account/user").json()] == ["Mine"]
    assert [u["name"] for u in other_tenant.get("/account/user").json()] == ["Theirs"]
    # and an update into an e-mail used only in the other account is fine too
    other = other_tenant.create_user("only-theirs@example.org", "Other")
    tenant_user = tenant.create_user("x@example.com", "X")
    moved = tenant.post(f"/account/user/{tenant_user}", json={"email": "only-theirs@example.org"})
    assert moved.status_code == 200, moved.text
    assert other_tenant.get(f"/account/user/{other}").json()["name"] == "Other"


def test_deleting_own_user_does_not_touch_the_other_accounts_keys(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    mine = tenant.create_user("same@example.com", "Mine")
    theirs = other_tenant.create_user("same@example.com", "Theirs")
    tenant.create_key(tenant.plain_lock, name="Mine", accountUserId=mine, remoteAllowed=False)
    their_key = other_tenant.create_key(
        other_tenant.plain_lock, name="Theirs", accountUserId=theirs, remoteAllowed=False
    )
    assert tenant.delete(f"/account/user/{mine}").status_code == 204
    their_keys = other_tenant.keys()
    assert [k["id"] for k in their_keys] == [their_key["id"]]
    assert other_tenant.get(f"/account/user/{theirs}").status_code == 200
    assert tenant.keys() == []
