"""A key's sync state: applied with a slot when the lock confirms, pending while it is offline,
failed with the lock's reason when it refuses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from conftest import Tenant, wait_until
from keyhouse.runtime import Runtime
from keyhouse.store.models import SimulatedAuth, SimulatedLock, SmartlockAuth

OBJECT_ID_FIELDS = {
    "timestamp",
    "counter",
    "date",
    "time",
    "machineIdentifier",
    "processIdentifier",
    "timeSecond",
}


@pytest.fixture
def user(tenant: Tenant) -> int:
    return tenant.create_user()


@pytest.fixture
def quick(runtime: Runtime) -> Runtime:
    """Writes wait only briefly for a lock that does not answer."""
    runtime.settings.confirm_wait_seconds = 0.2
    return runtime


def set_online(runtime: Runtime, lock_id: int, online: bool) -> None:
    with runtime.db.session() as session:
        device = session.get(SimulatedLock, lock_id)
        assert device is not None
        device.online = online


def reconnect(runtime: Runtime, lock_id: int) -> None:
    set_online(runtime, lock_id, True)
    runtime.device_worker.submit([lock_id])
    assert runtime.device_worker.wait([lock_id], 5)


def device_rows(runtime: Runtime, lock_id: int) -> list[SimulatedAuth]:
    with runtime.db.session() as session:
        rows = session.scalars(
            select(SimulatedAuth).where(SimulatedAuth.smartlock_id == lock_id)
        ).all()
        session.expunge_all()
        return list(rows)


def device_row(runtime: Runtime, lock_id: int, auth_key: str) -> SimulatedAuth | None:
    return next((r for r in device_rows(runtime, lock_id) if r.auth_key == auth_key), None)


def code_body(code: int = 345678, **extra: Any) -> dict[str, Any]:
    return {"name": "Cleaner", "type": 13, "code": code, "remoteAllowed": False, **extra}


def get_key(tenant: Tenant, key: dict[str, Any]) -> dict[str, Any]:
    answer = tenant.get(f"/smartlock/{key['smartlockId']}/auth/{key['id']}")
    assert answer.status_code == 200, answer.text
    return answer.json()


# --- an online lock ---------------------------------------------------------------------------


def test_key_is_applied_right_after_the_204(tenant: Tenant, user: int) -> None:
    key = tenant.create_key(
        tenant.plain_lock, name="Guest", accountUserId=user, remoteAllowed=False
    )
    assert key["syncState"] == "applied"
    assert isinstance(key["authId"], int)
    assert key["authId"] >= 2
    assert "operationId" not in key
    assert "error" not in key


def test_two_keys_get_different_slots(tenant: Tenant, user: int) -> None:
    first = tenant.create_key(tenant.keypad_lock, **code_body(345678))
    second = tenant.create_key(
        tenant.keypad_lock, name="Guest", accountUserId=user, remoteAllowed=False
    )
    assert first["authId"] != second["authId"]
    assert min(first["authId"], second["authId"]) >= 2


def test_owner_slot_1_is_never_given_to_a_key(tenant: Tenant, runtime: Runtime) -> None:
    runtime.settings.confirm_wait_seconds = 0
    for index in range(5):
        answer = tenant.put(
            f"/smartlock/{tenant.keypad_lock}/auth",
            json=code_body(345671 + index, name=f"C{index}"),
        )
        assert answer.status_code == 204, answer.text
    runtime.device_worker.submit([tenant.keypad_lock])
    assert runtime.device_worker.wait([tenant.keypad_lock], 5)
    slots = [k["authId"] for k in tenant.keys(tenant.keypad_lock)]
    assert sorted(slots) == [2, 3, 4, 5, 6]


def test_device_table_holds_the_key_until_it_is_deleted(tenant: Tenant, runtime: Runtime) -> None:
    key = tenant.create_key(tenant.keypad_lock, **code_body())
    assert runtime.link.auth_count(tenant.keypad_lock) == 1
    row = device_row(runtime, tenant.keypad_lock, key["id"])
    assert row is not None
    assert row.slot == key["authId"]
    assert row.data["code"] == 345678
    assert row.data["name"] == "Cleaner"
    answer = tenant.delete(f"/smartlock/{tenant.keypad_lock}/auth/{key['id']}")
    assert answer.status_code == 204, answer.text
    assert runtime.link.auth_count(tenant.keypad_lock) == 0
    assert tenant.keys() == []


def test_freed_slot_is_given_again(tenant: Tenant) -> None:
    first = tenant.create_key(tenant.keypad_lock, **code_body(345678, name="A"))
    tenant.create_key(tenant.keypad_lock, **code_body(456789, name="B"))
    assert tenant.delete(f"/smartlock/{tenant.keypad_lock}/auth/{first['id']}").status_code == 204
    third = tenant.create_key(tenant.keypad_lock, **code_body(567891, name="C"))
    assert third["authId"] == first["authId"]


# --- an offline lock --------------------------------------------------------------------------


def test_key_on_an_offline_lock_is_pending_with_an_operation_id(
    tenant: Tenant, quick: Runtime
) -> None:
    set_online(quick, tenant.keypad_lock, False)
    key = tenant.create_key(tenant.keypad_lock, **code_body())
    assert key["syncState"] == "pending"
    assert "authId" not in key
    assert "error" not in key
    operation = key["operationId"]
    assert set(operation) == OBJECT_ID_FIELDS
    for field in OBJECT_ID_FIELDS - {"date"}:
        assert isinstance(operation[field], int), field
    now = datetime.now(UTC).timestamp()
    assert abs(operation["timestamp"] - now) < 60
    assert operation["timeSecond"] == operation["timestamp"]
    assert operation["time"] == operation["timestamp"] * 1000
    assert (
        datetime.fromisoformat(operation["date"].replace("Z", "+00:00")).timestamp()
        == (operation["timestamp"])
    )
    assert quick.link.auth_count(tenant.keypad_lock) == 0


def test_pending_key_is_applied_when_the_lock_comes_back(tenant: Tenant, quick: Runtime) -> None:
    set_online(quick, tenant.keypad_lock, False)
    key = tenant.create_key(tenant.keypad_lock, **code_body())
    reconnect(quick, tenant.keypad_lock)
    after = get_key(tenant, key)
    assert after["syncState"] == "applied"
    assert after["authId"] >= 2
    assert "operationId" not in after
    assert "error" not in after
    assert quick.link.auth_count(tenant.keypad_lock) == 1


def test_offline_lock_does_not_hold_up_the_other_lock(
    tenant: Tenant, quick: Runtime, user: int
) -> None:
    set_online(quick, tenant.keypad_lock, False)
    answer = tenant.put(
        "/smartlock/auth",
        json={
            "name": "Both",
            "accountUserId": user,
            "remoteAllowed": False,
            "smartlockIds": [tenant.keypad_lock, tenant.plain_lock],
        },
    )
    assert answer.status_code == 204, answer.text

    def states() -> dict[int, str]:
        listed = tenant.keys()
        return {k["smartlockId"]: k["syncState"] for k in listed}

    wait_until(lambda: states()[tenant.plain_lock] == "applied", 5, "the online lock")
    assert states() == {tenant.keypad_lock: "pending", tenant.plain_lock: "applied"}


def test_quick_renames_while_offline_all_queue_and_the_last_wins(
    tenant: Tenant, quick: Runtime
) -> None:
    key = tenant.create_key(tenant.keypad_lock, **code_body())
    set_online(quick, tenant.keypad_lock, False)
    path = f"/smartlock/{tenant.keypad_lock}/auth/{key['id']}"
    operation_ids = []
    for name in ("First", "Second", "Third"):
        answer = tenant.post(path, json={"name": name})
        assert answer.status_code == 204, answer.text
        pending = get_key(tenant, key)
        assert pending["syncState"] == "pending"
        assert pending["name"] == name
        assert pending["authId"] == key["authId"]
        operation_ids.append(tuple(sorted(pending["operationId"].items())))
    assert len(set(operation_ids)) == 3
    # No queue of snapshots: the key row is the desired state, three revisions ahead of the lock.
    with quick.db.read() as session:
        row = session.get(SmartlockAuth, key["id"])
        assert row is not None
        assert (row.revision, row.applied_revision) == (4, 1)
    assert device_row(quick, tenant.keypad_lock, key["id"]).data["name"] == "Cleaner"  # type: ignore[union-attr]

    reconnect(quick, tenant.keypad_lock)
    after = get_key(tenant, key)
    assert after["syncState"] == "applied"
    assert after["name"] == "Third"
    assert after["authId"] == key["authId"]
    row = device_row(quick, tenant.keypad_lock, key["id"])
    assert row is not None
    assert row.data["name"] == "Third"
    assert row.data["code"] == 345678
    assert quick.link.auth_count(tenant.keypad_lock) == 1


def test_delete_while_offline_shows_deleting_until_the_lock_confirms(
    tenant: Tenant, quick: Runtime
) -> None:
    key = tenant.create_key(tenant.keypad_lock, **code_body())
    set_online(quick, tenant.keypad_lock, False)
    answer = tenant.delete(f"/smartlock/{tenant.keypad_lock}/auth/{key['id']}")
    assert answer.status_code == 204, answer.text
    assert get_key(tenant, key)["syncState"] == "deleting"
    assert quick.link.auth_count(tenant.keypad_lock) == 1
    reconnect(quick, tenant.keypad_lock)
    assert tenant.keys() == []
    assert quick.link.auth_count(tenant.keypad_lock) == 0


def test_create_then_delete_while_offline_leaves_nothing(tenant: Tenant, quick: Runtime) -> None:
    set_online(quick, tenant.keypad_lock, False)
    key = tenant.create_key(tenant.keypad_lock, **code_body())
    answer = tenant.delete(f"/smartlock/{tenant.keypad_lock}/auth/{key['id']}")
    assert answer.status_code == 204, answer.text
    reconnect(quick, tenant.keypad_lock)
    assert tenant.keys() == []
    assert quick.link.auth_count(tenant.keypad_lock) == 0


def test_update_of_a_deleted_key_is_404_and_changes_nothing(tenant: Tenant, quick: Runtime) -> None:
    key = tenant.create_key(tenant.keypad_lock, **code_body())
    set_online(quick, tenant.keypad_lock, False)
    assert tenant.delete(f"/smartlock/{tenant.keypad_lock}/auth/{key['id']}").status_code == 204
    answer = tenant.post(f"/smartlock/{tenant.keypad_lock}/auth/{key['id']}", json={"name": "x"})
    assert answer.status_code == 404, answer.text
    assert answer.json()["rule"] == "deleted"
    assert "was deleted" in answer.json()["detailMessage"]
    # a second DELETE answers 204 and changes nothing
    again = tenant.delete(f"/smartlock/{tenant.keypad_lock}/auth/{key['id']}")
    assert again.status_code == 204, again.text
    assert get_key(tenant, key)["syncState"] == "deleting"
    assert get_key(tenant, key)["name"] == "Cleaner"


# --- a rejected operation ---------------------------------------------------------------------


def test_code_the_lock_already_holds_ends_failed_with_its_reason(
    tenant: Tenant, runtime: Runtime
) -> None:
    with runtime.db.session() as session:
        session.add(
            SimulatedAuth(
                smartlock_id=tenant.keypad_lock,
                slot=50,
                auth_key="f" * 24,
                data={"type": 13, "name": "Set on the lock", "code": 345678},
            )
        )
    key = tenant.create_key(tenant.keypad_lock, **code_body(345678))
    assert key["syncState"] == "failed"
    assert "lock reported: keypad code already exists" in key["error"]
    assert "operationId" not in key
    assert "authId" not in key
    assert runtime.link.auth_count(tenant.keypad_lock) == 1
    # Fixing the code makes it go through.
    answer = tenant.post(f"/smartlock/{tenant.keypad_lock}/auth/{key['id']}", json={"code": 456789})
    assert answer.status_code == 204, answer.text
    fixed = get_key(tenant, key)
    assert fixed["syncState"] == "applied"
    assert "error" not in fixed
    assert fixed["authId"] >= 2
    assert fixed["authId"] != 50
    assert runtime.link.auth_count(tenant.keypad_lock) == 2
