"""GET /smartlock and GET /smartlock/{smartlockId}."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import Tenant
from official_schemas import official_spec


def official_schema(name: str) -> dict[str, Any]:
    return official_spec()["components"]["schemas"][name]


def locks(tenant: Tenant, **params: Any) -> list[dict[str, Any]]:
    answer = tenant.get("/smartlock", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_list_shows_both_locks_of_the_account(tenant: Tenant) -> None:
    found = locks(tenant)
    assert sorted(lock["smartlockId"] for lock in found) == sorted(
        [tenant.keypad_lock, tenant.plain_lock]
    )
    by_id = {lock["smartlockId"]: lock for lock in found}
    assert by_id[tenant.keypad_lock]["name"] == "Front Door"
    assert by_id[tenant.plain_lock]["name"] == "Flat 2"
    assert all(lock["accountId"] == tenant.account_id for lock in found)


def test_every_lock_carries_the_official_required_fields(tenant: Tenant) -> None:
    required = official_schema("Smartlock")["required"]
    assert set(required) == {
        "smartlockId",
        "accountId",
        "type",
        "authId",
        "name",
        "favorite",
        "serverState",
        "adminPinState",
    }
    config_required = official_schema("Smartlock.Config")["required"]
    for lock in locks(tenant):
        for name in required:
            assert name in lock, (name, lock)
            assert lock[name] is not None
        assert isinstance(lock["smartlockId"], int)
        assert lock["type"] == 4
        assert isinstance(lock["authId"], int)
        assert isinstance(lock["favorite"], bool)
        assert lock["serverState"] == 0  # the virtual lock is online
        assert lock["adminPinState"] in (0, 1, 2)
        for name in config_required:
            assert name in lock["config"], (name, lock["config"])
        assert lock["config"]["name"] == lock["name"]


def test_absent_fields_are_omitted_not_null(tenant: Tenant) -> None:
    for lock in locks(tenant):
        assert None not in lock.values()
        assert None not in lock["config"].values()
        assert None not in lock["state"].values()


def test_only_the_keypad_lock_reports_a_paired_keypad(tenant: Tenant) -> None:
    by_id = {lock["smartlockId"]: lock for lock in locks(tenant)}
    assert by_id[tenant.keypad_lock]["config"]["keypadPaired"] is True
    assert by_id[tenant.plain_lock]["config"]["keypadPaired"] is False


@pytest.mark.parametrize(("type_", "count"), [(4, 2), (0, 0), (2, 0)])
def test_filter_by_type(tenant: Tenant, type_: int, count: int) -> None:
    found = locks(tenant, type=type_)
    assert len(found) == count
    assert all(lock["type"] == type_ for lock in found)


def test_filter_by_auth_id(tenant: Tenant) -> None:
    auth_ids = {lock["authId"] for lock in locks(tenant)}
    assert len(auth_ids) == 1
    (auth_id,) = auth_ids
    assert sorted(lock["smartlockId"] for lock in locks(tenant, authId=auth_id)) == sorted(
        [tenant.keypad_lock, tenant.plain_lock]
    )
    assert locks(tenant, authId=auth_id + 1000) == []


def test_filter_with_a_non_numeric_type_is_400(tenant: Tenant) -> None:
    answer = tenant.get("/smartlock", params={"type": "lock"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == "type"


def test_get_one_lock(tenant: Tenant) -> None:
    answer = tenant.get(f"/smartlock/{tenant.keypad_lock}")
    assert answer.status_code == 200, answer.text
    lock = answer.json()
    assert lock["smartlockId"] == tenant.keypad_lock
    assert lock["accountId"] == tenant.account_id
    assert lock["name"] == "Front Door"
    assert lock["config"]["keypadPaired"] is True
    listed = {item["smartlockId"]: item for item in locks(tenant)}[tenant.keypad_lock]
    for name in ("smartlockId", "accountId", "type", "authId", "name", "favorite", "nukiId"):
        assert lock[name] == listed[name]


def test_get_unknown_lock_is_404_naming_the_id(tenant: Tenant) -> None:
    unknown = 4 << 32  # type 4 with Nuki id 00000000, which is never handed out
    answer = tenant.get(f"/smartlock/{unknown}")
    assert answer.status_code == 404, answer.text
    error = answer.json()
    assert error["error"] == "not_found"
    assert str(unknown) in error["detailMessage"]


def test_get_another_accounts_lock_is_404_naming_the_id(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    answer = other_tenant.get(f"/smartlock/{tenant.keypad_lock}")
    assert answer.status_code == 404, answer.text
    assert str(tenant.keypad_lock) in answer.json()["detailMessage"]
    assert "Front Door" not in answer.text


@pytest.mark.parametrize("bad_id", ["abc", "12x", "1.5"])
def test_get_with_a_non_numeric_id_is_400_naming_smartlock_id(tenant: Tenant, bad_id: str) -> None:
    answer = tenant.get(f"/smartlock/{bad_id}")
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert error["field"] == "smartlockId"
    assert "smartlockId" in error["detailMessage"]


def test_smartlock_id_is_type_and_nuki_id(tenant: Tenant) -> None:
    for lock in locks(tenant):
        nuki_id = lock["nukiId"]
        assert len(nuki_id) == 8
        int(nuki_id, 16)  # 8 hex digits
        assert lock["smartlockId"] == int(hex(lock["type"])[2:] + nuki_id, 16)
        assert lock["smartlockId"] >> 32 == 4


def test_locks_of_two_accounts_have_distinct_ids(tenant: Tenant, other_tenant: Tenant) -> None:
    mine = {lock["smartlockId"] for lock in locks(tenant)}
    theirs = {lock["smartlockId"] for lock in locks(other_tenant)}
    assert len(mine) == 2 and len(theirs) == 2
    assert not mine & theirs
