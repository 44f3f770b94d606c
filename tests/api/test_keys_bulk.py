"""Keys across locks: PUT/GET/POST/DELETE /smartlock/auth, the types filter, single delete."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import Tenant, make_tenant
from keyhouse.runtime import Runtime
from keyhouse.services import admin

MISSING_ID = "65219648fe57075d71a6cb01"


@pytest.fixture
def user(tenant: Tenant) -> int:
    return tenant.create_user()


def snapshot(tenant: Tenant) -> list[dict[str, Any]]:
    return sorted(tenant.keys(), key=lambda k: k["id"])


def device_counts(tenant: Tenant, *lock_ids: int) -> list[int]:
    return [tenant.runtime.link.auth_count(lock_id) for lock_id in lock_ids]


def expect_refusal(
    tenant: Tenant,
    method: str,
    path: str,
    body: Any,
    *,
    status: int,
    field: str | None = None,
    rule: str | None = None,
) -> dict[str, Any]:
    """Send the request, expect the refusal, and check that no key and no device changed."""
    locks = (tenant.keypad_lock, tenant.plain_lock)
    before, devices_before = snapshot(tenant), device_counts(tenant, *locks)
    answer = tenant.request(method, path, json=body)
    assert answer.status_code == status, answer.text
    error = answer.json()
    if field is not None:
        assert error["field"] == field, error
    if rule is not None:
        assert error["rule"] == rule, error
    assert snapshot(tenant) == before
    assert device_counts(tenant, *locks) == devices_before
    return error


def code_body(code: int = 345678, **extra: Any) -> dict[str, Any]:
    return {"name": "Cleaner", "type": 13, "code": code, "remoteAllowed": False, **extra}


def second_keypad_lock(tenant: Tenant) -> int:
    with tenant.runtime.db.session() as session:
        lock = admin.add_lock(
            session, tenant.runtime.link, account_id=tenant.account_id, name="Back", keypad=True
        )
        return lock.id


# --- PUT /smartlock/auth: one key on several locks --------------------------------------------


def test_multi_lock_create_makes_one_key_per_lock(tenant: Tenant, user: int) -> None:
    answer = tenant.put(
        "/smartlock/auth",
        json={
            "name": "Everywhere",
            "accountUserId": user,
            "remoteAllowed": True,
            "smartlockIds": [tenant.keypad_lock, tenant.plain_lock],
            "allowedWeekDays": 96,
        },
    )
    assert answer.status_code == 204, answer.text
    assert answer.content == b""
    keys = tenant.keys()
    assert sorted(k["smartlockId"] for k in keys) == sorted([tenant.keypad_lock, tenant.plain_lock])
    assert {k["name"] for k in keys} == {"Everywhere"}
    assert {k["accountUserId"] for k in keys} == {user}
    assert {k["allowedWeekDays"] for k in keys} == {96}
    assert {k["syncState"] for k in keys} == {"applied"}
    assert len({k["id"] for k in keys}) == 2
    assert device_counts(tenant, tenant.keypad_lock, tenant.plain_lock) == [1, 1]


def test_multi_lock_keypad_code_on_two_keypad_locks(tenant: Tenant) -> None:
    back = second_keypad_lock(tenant)
    answer = tenant.put("/smartlock/auth", json=code_body(smartlockIds=[tenant.keypad_lock, back]))
    assert answer.status_code == 204, answer.text
    keys = tenant.keys()
    assert sorted(k["smartlockId"] for k in keys) == sorted([tenant.keypad_lock, back])
    assert {k["code"] for k in keys} == {345678}


def test_multi_lock_keypad_code_with_a_lock_without_keypad_creates_nothing(
    tenant: Tenant,
) -> None:
    error = expect_refusal(
        tenant,
        "PUT",
        "/smartlock/auth",
        code_body(smartlockIds=[tenant.keypad_lock, tenant.plain_lock]),
        status=400,
        field="type",
        rule="keypad_required",
    )
    assert str(tenant.plain_lock) in error["detailMessage"]


def test_multi_lock_code_taken_on_one_lock_creates_nothing(tenant: Tenant) -> None:
    back = second_keypad_lock(tenant)
    tenant.create_key(back, **code_body(name="Already here"))
    before = snapshot(tenant)
    answer = tenant.put("/smartlock/auth", json=code_body(smartlockIds=[tenant.keypad_lock, back]))
    assert answer.status_code == 409, answer.text
    assert answer.json()["field"] == "code"
    assert snapshot(tenant) == before
    assert tenant.runtime.link.auth_count(tenant.keypad_lock) == 0


def test_multi_lock_with_empty_smartlock_ids_is_refused(tenant: Tenant, user: int) -> None:
    expect_refusal(
        tenant,
        "PUT",
        "/smartlock/auth",
        {"name": "x", "accountUserId": user, "remoteAllowed": False, "smartlockIds": []},
        status=400,
        field="smartlockIds",
        rule="required",
    )


def test_multi_lock_without_smartlock_ids_is_refused(tenant: Tenant, user: int) -> None:
    expect_refusal(
        tenant,
        "PUT",
        "/smartlock/auth",
        {"name": "x", "accountUserId": user, "remoteAllowed": False},
        status=400,
        field="smartlockIds",
        rule="required",
    )


def test_multi_lock_with_duplicate_ids_is_refused(tenant: Tenant, user: int) -> None:
    expect_refusal(
        tenant,
        "PUT",
        "/smartlock/auth",
        {
            "name": "x",
            "accountUserId": user,
            "remoteAllowed": False,
            "smartlockIds": [tenant.plain_lock, tenant.plain_lock],
        },
        status=400,
        field="smartlockIds",
        rule="unique",
    )


def test_multi_lock_with_an_unknown_id_creates_nothing(tenant: Tenant, user: int) -> None:
    error = expect_refusal(
        tenant,
        "PUT",
        "/smartlock/auth",
        {
            "name": "x",
            "accountUserId": user,
            "remoteAllowed": False,
            "smartlockIds": [tenant.keypad_lock, 999999, tenant.plain_lock],
        },
        status=404,
        field="smartlockIds",
    )
    assert "999999" in error["detailMessage"]


def test_multi_lock_with_another_accounts_lock_creates_nothing(
    tenant: Tenant, user: int, client: TestClient, runtime: Runtime
) -> None:
    stranger = make_tenant(client, runtime, "neighbour@example.org")
    expect_refusal(
        tenant,
        "PUT",
        "/smartlock/auth",
        {
            "name": "x",
            "accountUserId": user,
            "remoteAllowed": False,
            "smartlockIds": [tenant.keypad_lock, stranger.plain_lock],
        },
        status=404,
        field="smartlockIds",
    )
    assert stranger.keys() == []


def test_multi_lock_applies_the_key_rules(tenant: Tenant, user: int) -> None:
    error = expect_refusal(
        tenant,
        "PUT",
        "/smartlock/auth",
        {
            "name": "n" * 33,
            "accountUserId": user,
            "remoteAllowed": False,
            "smartlockIds": [tenant.keypad_lock, tenant.plain_lock],
        },
        status=400,
        field="name",
        rule="max_length",
    )
    # The rule is checked for each lock, but the problem is listed once.
    assert [p["rule"] for p in error["problems"]] == ["max_length"]
    assert "more problem" not in error["detailMessage"]


def test_multi_lock_lists_each_problem_once(tenant: Tenant) -> None:
    error = expect_refusal(
        tenant,
        "PUT",
        "/smartlock/auth",
        {
            "name": "n" * 40,
            "remoteAllowed": False,
            "smartlockIds": [tenant.keypad_lock, tenant.plain_lock],
        },
        status=400,
    )
    found = [(p["field"], p["rule"]) for p in error["problems"]]
    assert sorted(found) == [("accountUserId", "required"), ("name", "max_length")]


# --- GET filters ----------------------------------------------------------------------------


@pytest.fixture
def mixed(tenant: Tenant, user: int) -> dict[str, dict[str, Any]]:
    """An app key on each lock for `user`, a fob, and two keypad codes (one with a user)."""
    other = tenant.create_user("other@example.com", "Other")
    keys = {
        "app_keypad": tenant.create_key(
            tenant.keypad_lock, name="App", accountUserId=user, remoteAllowed=False
        ),
        "app_plain": tenant.create_key(
            tenant.plain_lock, name="App", accountUserId=user, remoteAllowed=False
        ),
        "fob": tenant.create_key(
            tenant.plain_lock, name="Fob", type=2, accountUserId=other, remoteAllowed=False
        ),
        "code": tenant.create_key(tenant.keypad_lock, **code_body(345678)),
        "code_with_user": tenant.create_key(
            tenant.keypad_lock, **code_body(456789, name="Mine", accountUserId=other)
        ),
    }
    keys["other"] = {"accountUserId": other}
    return keys


def ids(keys: list[dict[str, Any]]) -> set[str]:
    return {k["id"] for k in keys}


def listed(tenant: Tenant, path: str, **params: Any) -> list[dict[str, Any]]:
    answer = tenant.get(path, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_list_all_without_filter(tenant: Tenant, mixed: dict[str, Any]) -> None:
    assert len(listed(tenant, "/smartlock/auth")) == 5


def test_filter_types_0_and_13(tenant: Tenant, mixed: dict[str, Any]) -> None:
    found = listed(tenant, "/smartlock/auth", types="0,13")
    assert ids(found) == {
        mixed[n]["id"] for n in ("app_keypad", "app_plain", "code", "code_with_user")
    }


def test_filter_types_13(tenant: Tenant, mixed: dict[str, Any]) -> None:
    found = listed(tenant, "/smartlock/auth", types="13")
    assert ids(found) == {mixed["code"]["id"], mixed["code_with_user"]["id"]}
    assert {k["type"] for k in found} == {13}


def test_filter_types_with_spaces_and_unused_type(tenant: Tenant, mixed: dict[str, Any]) -> None:
    found = listed(tenant, "/smartlock/auth", types=" 2 , 14")
    assert ids(found) == {mixed["fob"]["id"]}


def test_filter_by_account_user(tenant: Tenant, mixed: dict[str, Any], user: int) -> None:
    found = listed(tenant, "/smartlock/auth", accountUserId=user)
    assert ids(found) == {mixed["app_keypad"]["id"], mixed["app_plain"]["id"]}
    assert {k["accountUserId"] for k in found} == {user}


def test_filter_by_account_user_and_type(tenant: Tenant, mixed: dict[str, Any]) -> None:
    other = mixed["other"]["accountUserId"]
    found = listed(tenant, "/smartlock/auth", accountUserId=other, types="13")
    assert ids(found) == {mixed["code_with_user"]["id"]}


def test_negative_account_user_lists_keys_without_user(
    tenant: Tenant, mixed: dict[str, Any]
) -> None:
    found = listed(tenant, "/smartlock/auth", accountUserId=-1)
    assert ids(found) == {mixed["code"]["id"]}
    assert all("accountUserId" not in k for k in found)


def test_unknown_account_user_lists_nothing(
    tenant: Tenant, mixed: dict[str, Any], user: int
) -> None:
    assert listed(tenant, "/smartlock/auth", accountUserId=user + 1000) == []


@pytest.mark.parametrize("types", ["abc", "0,x", "0;13", "1.5"])
def test_bad_types_filter_is_refused(tenant: Tenant, mixed: dict[str, Any], types: str) -> None:
    answer = tenant.get("/smartlock/auth", params={"types": types})
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == "types"
    assert answer.json()["rule"] == "format"


def test_bad_account_user_filter_is_refused(tenant: Tenant) -> None:
    answer = tenant.get("/smartlock/auth", params={"accountUserId": "abc"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == "accountUserId"


def test_lock_list_types_filter(tenant: Tenant, mixed: dict[str, Any]) -> None:
    on_keypad = f"/smartlock/{tenant.keypad_lock}/auth"
    assert ids(listed(tenant, on_keypad)) == {
        mixed[n]["id"] for n in ("app_keypad", "code", "code_with_user")
    }
    assert ids(listed(tenant, on_keypad, types="13")) == {
        mixed["code"]["id"],
        mixed["code_with_user"]["id"],
    }
    assert ids(listed(tenant, on_keypad, types="0")) == {mixed["app_keypad"]["id"]}
    on_plain = f"/smartlock/{tenant.plain_lock}/auth"
    assert ids(listed(tenant, on_plain, types="2")) == {mixed["fob"]["id"]}
    assert listed(tenant, on_plain, types="13") == []
    answer = tenant.get(on_keypad, params={"types": "abc"})
    assert answer.status_code == 400
    assert answer.json()["field"] == "types"


def test_lists_are_per_account(
    tenant: Tenant, mixed: dict[str, Any], client: TestClient, runtime: Runtime
) -> None:
    stranger = make_tenant(client, runtime, "neighbour@example.org")
    assert stranger.keys() == []
    answer = stranger.get(f"/smartlock/{tenant.keypad_lock}/auth")
    assert answer.status_code in (403, 404)


# --- POST /smartlock/auth: many updates ------------------------------------------------------


def test_multi_update_applies_all(tenant: Tenant, mixed: dict[str, Any]) -> None:
    answer = tenant.post(
        "/smartlock/auth",
        json=[
            {"id": mixed["code"]["id"], "name": "Renamed code", "allowedWeekDays": 3},
            {"id": mixed["app_plain"]["id"], "enabled": False},
            {"id": mixed["fob"]["id"], "enable": False, "remoteAllowed": True},
        ],
    )
    assert answer.status_code == 204, answer.text
    listed_now = tenant.keys()
    by_id = {k["id"]: k for k in listed_now}
    code = by_id[mixed["code"]["id"]]
    assert (code["name"], code["allowedWeekDays"], code["code"]) == ("Renamed code", 3, 345678)
    assert by_id[mixed["app_plain"]["id"]]["enabled"] is False
    assert by_id[mixed["app_plain"]["id"]]["name"] == "App"
    assert by_id[mixed["fob"]["id"]]["enabled"] is False
    assert by_id[mixed["fob"]["id"]]["remoteAllowed"] is True
    assert by_id[mixed["app_keypad"]["id"]]["enabled"] is True
    assert {k["syncState"] for k in by_id.values()} == {"applied"}


def test_multi_update_accepts_what_was_read(tenant: Tenant, mixed: dict[str, Any]) -> None:
    everything = tenant.keys()
    answer = tenant.post(
        "/smartlock/auth", json=[{**k, "name": k["name"] + " 2"} for k in everything]
    )
    assert answer.status_code == 204, answer.text
    renamed = tenant.keys()
    assert sorted(k["name"] for k in renamed) == sorted(k["name"] + " 2" for k in everything)


def test_multi_update_with_one_invalid_entry_applies_none(
    tenant: Tenant, mixed: dict[str, Any]
) -> None:
    error = expect_refusal(
        tenant,
        "POST",
        "/smartlock/auth",
        [
            {"id": mixed["app_plain"]["id"], "name": "Fine"},
            {"id": mixed["code"]["id"], "name": "k" * 21},
        ],
        status=400,
        field="name",
        rule="max_length",
    )
    assert mixed["code"]["id"] in error["detailMessage"]


def test_multi_update_with_a_code_conflict_between_entries_applies_none(
    tenant: Tenant, mixed: dict[str, Any]
) -> None:
    expect_refusal(
        tenant,
        "POST",
        "/smartlock/auth",
        [
            {"id": mixed["code"]["id"], "code": 777777},
            {"id": mixed["code_with_user"]["id"], "code": 777777},
        ],
        status=409,
        field="code",
    )


def test_multi_update_with_an_unknown_id_applies_none(
    tenant: Tenant, mixed: dict[str, Any]
) -> None:
    error = expect_refusal(
        tenant,
        "POST",
        "/smartlock/auth",
        [{"id": mixed["code"]["id"], "name": "Fine"}, {"id": MISSING_ID, "name": "Ghost"}],
        status=403,
    )
    assert MISSING_ID in error["detailMessage"]


def test_multi_update_of_another_accounts_key_is_refused(
    tenant: Tenant, mixed: dict[str, Any], client: TestClient, runtime: Runtime
) -> None:
    stranger = make_tenant(client, runtime, "neighbour@example.org")
    theirs = stranger.create_key(stranger.keypad_lock, **code_body())
    expect_refusal(
        tenant,
        "POST",
        "/smartlock/auth",
        [{"id": theirs["id"], "name": "Mine now"}],
        status=403,
    )
    assert stranger.keys()[0]["name"] == "Cleaner"


def test_multi_update_with_duplicate_ids_is_refused(tenant: Tenant, mixed: dict[str, Any]) -> None:
    expect_refusal(
        tenant,
        "POST",
        "/smartlock/auth",
        [{"id": mixed["code"]["id"], "name": "A"}, {"id": mixed["code"]["id"], "name": "B"}],
        status=400,
        field="id",
        rule="unique",
    )


def test_multi_update_entry_without_id_is_refused(tenant: Tenant, mixed: dict[str, Any]) -> None:
    error = expect_refusal(
        tenant,
        "POST",
        "/smartlock/auth",
        [{"id": mixed["code"]["id"], "name": "A"}, {"name": "B"}],
        status=400,
        rule="required",
    )
    assert error["field"].endswith("id")
    assert error["field"].startswith("1")


@pytest.mark.parametrize("body", [{"id": "x", "name": "A"}, "ids", None])
def test_multi_update_body_must_be_an_array(
    tenant: Tenant, mixed: dict[str, Any], body: Any
) -> None:
    expect_refusal(tenant, "POST", "/smartlock/auth", body, status=400)


def test_multi_update_with_null_name_is_refused(tenant: Tenant, mixed: dict[str, Any]) -> None:
    expect_refusal(
        tenant,
        "POST",
        "/smartlock/auth",
        [{"id": mixed["code"]["id"], "name": None}],
        status=400,
        field="name",
        rule="not_nullable",
    )


def test_multi_update_with_unknown_field_is_refused(tenant: Tenant, mixed: dict[str, Any]) -> None:
    error = expect_refusal(
        tenant,
        "POST",
        "/smartlock/auth",
        [{"id": mixed["code"]["id"], "nickname": "A"}],
        status=400,
        rule="unknown_field",
    )
    assert error["field"].endswith("nickname")


# --- DELETE ---------------------------------------------------------------------------------


def test_multi_delete_removes_the_keys(tenant: Tenant, mixed: dict[str, Any]) -> None:
    gone = [mixed["code"]["id"], mixed["app_plain"]["id"]]
    answer = tenant.delete("/smartlock/auth", json=gone)
    assert answer.status_code == 204, answer.text
    assert answer.content == b""
    left = ids(tenant.keys())
    assert left == {mixed[n]["id"] for n in ("app_keypad", "fob", "code_with_user")}
    assert device_counts(tenant, tenant.keypad_lock, tenant.plain_lock) == [2, 1]


def test_multi_delete_with_an_unknown_id_deletes_nothing(
    tenant: Tenant, mixed: dict[str, Any]
) -> None:
    error = expect_refusal(
        tenant,
        "DELETE",
        "/smartlock/auth",
        [mixed["code"]["id"], MISSING_ID],
        status=403,
    )
    assert MISSING_ID in error["detailMessage"]


def test_multi_delete_of_another_accounts_key_deletes_nothing(
    tenant: Tenant, mixed: dict[str, Any], client: TestClient, runtime: Runtime
) -> None:
    stranger = make_tenant(client, runtime, "neighbour@example.org")
    theirs = stranger.create_key(stranger.keypad_lock, **code_body())
    expect_refusal(
        tenant, "DELETE", "/smartlock/auth", [mixed["code"]["id"], theirs["id"]], status=403
    )
    assert ids(stranger.keys()) == {theirs["id"]}


def test_multi_delete_naming_a_key_twice_deletes_it_once(
    tenant: Tenant, mixed: dict[str, Any]
) -> None:
    key = mixed["code"]["id"]
    answer = tenant.delete("/smartlock/auth", json=[key, key])
    assert answer.status_code == 204, answer.text
    assert key not in ids(tenant.keys())


@pytest.mark.parametrize("body", [{"ids": []}, "abc", [1, 2]])
def test_multi_delete_body_must_be_an_array_of_strings(
    tenant: Tenant, mixed: dict[str, Any], body: Any
) -> None:
    expect_refusal(tenant, "DELETE", "/smartlock/auth", body, status=400)


def test_single_delete_then_get_is_404(tenant: Tenant, mixed: dict[str, Any]) -> None:
    key = mixed["code"]
    path = f"/smartlock/{key['smartlockId']}/auth/{key['id']}"
    answer = tenant.delete(path)
    assert answer.status_code == 204, answer.text
    assert answer.content == b""
    got = tenant.get(path)
    assert got.status_code == 404, got.text
    assert key["id"] in got.json()["detailMessage"]
    assert key["id"] not in ids(tenant.keys())
    assert tenant.runtime.link.auth_count(tenant.keypad_lock) == 2


def test_deleting_twice_is_harmless(tenant: Tenant, mixed: dict[str, Any]) -> None:
    key = mixed["code"]
    path = f"/smartlock/{key['smartlockId']}/auth/{key['id']}"
    assert tenant.delete(path).status_code == 204
    before = snapshot(tenant)
    second = tenant.delete(path)
    assert second.status_code == 404, second.text
    assert second.json()["field"] == "id"
    assert snapshot(tenant) == before


def test_single_delete_on_the_wrong_lock_is_404(tenant: Tenant, mixed: dict[str, Any]) -> None:
    key = mixed["code"]
    before = snapshot(tenant)
    answer = tenant.delete(f"/smartlock/{tenant.plain_lock}/auth/{key['id']}")
    assert answer.status_code == 404, answer.text
    assert snapshot(tenant) == before


def test_deleted_code_can_be_created_again(tenant: Tenant, mixed: dict[str, Any]) -> None:
    key = mixed["code"]
    assert tenant.delete(f"/smartlock/{key['smartlockId']}/auth/{key['id']}").status_code == 204
    again = tenant.create_key(tenant.keypad_lock, **code_body(345678, name="Again"))
    assert again["syncState"] == "applied"
