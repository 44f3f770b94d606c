"""/emulator/…: controlling a virtual lock (online, latency, faults), and a person at the door
(keypad code, app key, button), decided by the lock with its own copy of each key; plus
POST /smartlock/{id}/sync, which makes the lock's table match the server's keys again."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from conftest import Tenant, wait_until
from keyhouse.runtime import Runtime
from keyhouse.store.models import SimulatedAuth

MONDAY_10_VIENNA = "2026-12-07T09:00:00Z"
MONDAY_1930_VIENNA = "2026-12-07T18:30:00Z"
TUESDAY_10_VIENNA = "2026-12-08T09:00:00Z"
WINDOW = {"allowedWeekDays": 64, "allowedFromTime": 480, "allowedUntilTime": 1080}
EMULATOR_FIELDS = {
    "smartlockId",
    "online",
    "latencyMs",
    "fault",
    "state",
    "keypad",
    "auths",
    "pendingOperations",
}
TRIGGER_BUTTON, TRIGGER_APP, TRIGGER_KEYPAD = 2, 5, 255
LOG_SUCCESS, LOG_REJECTED = 0, 9
LOCKED, UNLOCKED = 1, 3
UNKNOWN_LOCK = 4_294_967_295
ORPHAN_KEY = "0123456789abcdef01234567"


# --- helpers ----------------------------------------------------------------------------------


@pytest.fixture
def user(tenant: Tenant) -> int:
    return tenant.create_user()


@pytest.fixture
def quick(runtime: Runtime) -> Runtime:
    """Writes wait only briefly for a lock that does not answer."""
    runtime.settings.confirm_wait_seconds = 0.2
    return runtime


@pytest.fixture
def code_key(tenant: Tenant) -> dict[str, Any]:
    """A keypad code for Mondays 08:00–18:00 on the keypad lock (Europe/Vienna)."""
    key = tenant.create_key(
        tenant.keypad_lock, name="Cleaner", type=13, code=345678, remoteAllowed=False, **WINDOW
    )
    assert key["syncState"] == "applied"
    return key


@pytest.fixture
def app_key(tenant: Tenant, user: int) -> dict[str, Any]:
    key = tenant.create_key(
        tenant.keypad_lock, name="Guest", accountUserId=user, remoteAllowed=False
    )
    assert key["syncState"] == "applied"
    assert isinstance(key["authId"], int)
    return key


def emulator(tenant: Tenant, smartlock_id: int) -> dict[str, Any]:
    answer = tenant.get(f"/emulator/smartlock/{smartlock_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def emulate(tenant: Tenant, smartlock_id: int, **changes: Any) -> dict[str, Any]:
    answer = tenant.post(f"/emulator/smartlock/{smartlock_id}", json=changes)
    assert answer.status_code == 200, answer.text
    return answer.json()


def keypad(tenant: Tenant, smartlock_id: int, code: int, at: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code}
    if at is not None:
        body["at"] = at
    answer = tenant.post(f"/emulator/smartlock/{smartlock_id}/keypad", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def use_app(tenant: Tenant, smartlock_id: int, **body: Any) -> dict[str, Any]:
    answer = tenant.post(f"/emulator/smartlock/{smartlock_id}/app", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def get_key(tenant: Tenant, key: dict[str, Any]) -> dict[str, Any]:
    answer = tenant.get(f"/smartlock/{key['smartlockId']}/auth/{key['id']}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def log_entry(tenant: Tenant, smartlock_id: int, log_id: str) -> dict[str, Any]:
    answer = tenant.get(f"/smartlock/{smartlock_id}/log", params={"limit": 50})
    assert answer.status_code == 200, answer.text
    (entry,) = [e for e in answer.json() if e["id"] == log_id]
    return entry


def device_rows(runtime: Runtime, smartlock_id: int) -> dict[str, dict[str, Any]]:
    """The lock's own table: auth key -> its data and slot."""
    with runtime.db.session() as session:
        rows = session.scalars(
            select(SimulatedAuth).where(SimulatedAuth.smartlock_id == smartlock_id)
        )
        return {row.auth_key: {**row.data, "slot": row.slot} for row in rows}


def refused(
    answer: httpx.Response, status: int, *, error: str, field: str | None = None
) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["status"] == status
    assert body["error"] == error, body
    if field is not None:
        assert body["field"] == field, body
    return body


# --- the emulator state ----------------------------------------------------------------------


def test_get_answers_the_emulator_state(tenant: Tenant) -> None:
    body = emulator(tenant, tenant.keypad_lock)
    assert set(body) >= EMULATOR_FIELDS
    assert body["smartlockId"] == tenant.keypad_lock
    assert body["online"] is True
    assert body["latencyMs"] == 0
    assert body["fault"] is None
    assert body["state"] == LOCKED
    assert body["keypad"] is True
    assert body["auths"] == 0
    assert body["pendingOperations"] == 0
    plain = emulator(tenant, tenant.plain_lock)
    assert plain["smartlockId"] == tenant.plain_lock
    assert plain["keypad"] is False


def test_post_changes_only_the_fields_given_and_answers_the_state(tenant: Tenant) -> None:
    lock = tenant.plain_lock
    body = emulate(tenant, lock, latencyMs=5)
    assert set(body) >= EMULATOR_FIELDS
    assert (body["online"], body["latencyMs"], body["fault"]) == (True, 5, None)

    body = emulate(tenant, lock, fault="busy")
    assert (body["online"], body["latencyMs"], body["fault"]) == (True, 5, "busy")

    body = emulate(tenant, lock, online=False)
    assert (body["online"], body["latencyMs"], body["fault"]) == (False, 5, "busy")

    body = emulate(tenant, lock)
    assert (body["online"], body["latencyMs"], body["fault"]) == (False, 5, "busy")

    body = emulate(tenant, lock, online=True, latencyMs=0, fault=None)
    assert (body["online"], body["latencyMs"], body["fault"]) == (True, 0, None)
    assert emulator(tenant, lock) == body


@pytest.mark.parametrize("fault", ["busy", "motorBlocked", "codeExists", "full"])
def test_every_fault_can_be_set_and_cleared(tenant: Tenant, fault: str) -> None:
    assert emulate(tenant, tenant.plain_lock, fault=fault)["fault"] == fault
    assert emulator(tenant, tenant.plain_lock)["fault"] == fault
    assert emulate(tenant, tenant.plain_lock, fault=None)["fault"] is None
    assert emulator(tenant, tenant.plain_lock)["fault"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"fault": "nope"}, "fault"),
        ({"fault": 3}, "fault"),
        ({"latencyMs": -1}, "latencyMs"),
        ({"latencyMs": 60_001}, "latencyMs"),
        ({"latencyMs": "slow"}, "latencyMs"),
        ({"online": [True]}, "online"),
    ],
)
def test_bad_emulator_changes_are_400_on_their_field(
    tenant: Tenant, body: dict[str, Any], field: str
) -> None:
    before = emulator(tenant, tenant.plain_lock)
    answer = tenant.post(f"/emulator/smartlock/{tenant.plain_lock}", json=body)
    refused(answer, 400, error="validation_failed", field=field)
    assert emulator(tenant, tenant.plain_lock) == before


def emulator_calls(lock: int) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("GET", f"/emulator/smartlock/{lock}", None),
        ("POST", f"/emulator/smartlock/{lock}", {"online": False}),
        ("POST", f"/emulator/smartlock/{lock}/keypad", {"code": 345678}),
        ("POST", f"/emulator/smartlock/{lock}/app", {"authId": 2, "action": 1}),
        ("POST", f"/emulator/smartlock/{lock}/button", None),
    ]


def test_emulator_needs_scope_emulator(tenant: Tenant) -> None:
    token = tenant.token_with("smartlock", "smartlock.action", "smartlock.log")
    headers = {"Authorization": f"Bearer {token}"}
    for method, path, body in emulator_calls(tenant.keypad_lock):
        answer = tenant.client.request(method, path, json=body, headers=headers)
        problem = refused(answer, 403, error="missing_scope")
        assert problem["rule"] == "scope"
        assert "emulator" in problem["detailMessage"]
    state = emulator(tenant, tenant.keypad_lock)
    assert state["online"] is True
    assert state["state"] == LOCKED


def test_a_token_with_only_emulator_scope_works(tenant: Tenant) -> None:
    token = tenant.token_with("emulator")
    answer = tenant.client.get(
        f"/emulator/smartlock/{tenant.plain_lock}", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200, answer.text


def test_another_accounts_lock_is_404_and_untouched(tenant: Tenant, other_tenant: Tenant) -> None:
    foreign = other_tenant.keypad_lock
    for method, path, body in emulator_calls(foreign):
        answer = tenant.request(method, path, json=body)
        refused(answer, 404, error="not_found")
    state = emulator(other_tenant, foreign)
    assert state["online"] is True
    assert state["state"] == LOCKED
    answer = other_tenant.get(f"/smartlock/{foreign}/log")
    assert answer.status_code == 200
    assert answer.json() == []


def test_an_unknown_lock_is_404(tenant: Tenant) -> None:
    for method, path, body in emulator_calls(UNKNOWN_LOCK):
        answer = tenant.request(method, path, json=body)
        refused(answer, 404, error="not_found")


# --- faults on writes -------------------------------------------------------------------------


def test_code_exists_fault_fails_a_new_keypad_code(tenant: Tenant, runtime: Runtime) -> None:
    lock = tenant.keypad_lock
    emulate(tenant, lock, fault="codeExists")
    key = tenant.create_key(lock, name="Cleaner", type=13, code=345678, remoteAllowed=False)
    assert key["syncState"] == "failed"
    assert "keypad code already exists" in key["error"]
    assert "authId" not in key
    assert "operationId" not in key
    assert key["id"] not in device_rows(runtime, lock)
    assert emulator(tenant, lock)["auths"] == 0

    assert emulate(tenant, lock, fault=None)["fault"] is None
    other = tenant.create_key(lock, name="Nanny", type=13, code=456789, remoteAllowed=False)
    assert other["syncState"] == "applied"
    assert other["id"] in device_rows(runtime, lock)


def test_full_fault_fails_a_new_key(tenant: Tenant, user: int) -> None:
    emulate(tenant, tenant.plain_lock, fault="full")
    key = tenant.create_key(
        tenant.plain_lock, name="Guest", accountUserId=user, remoteAllowed=False
    )
    assert key["syncState"] == "failed"
    assert "200 authorizations" in key["error"]


# --- offline: queued changes apply in order when the lock is back -----------------------------


def test_offline_lock_queues_changes_and_applies_them_when_back(
    tenant: Tenant, quick: Runtime
) -> None:
    lock = tenant.keypad_lock
    assert emulate(tenant, lock, online=False)["online"] is False
    key = tenant.create_key(lock, name="Cleaner", type=13, code=345678, remoteAllowed=False)
    assert key["syncState"] == "pending"
    assert "authId" not in key
    state = emulator(tenant, lock)
    assert state["pendingOperations"] == 1
    assert state["auths"] == 0

    for index in range(1, 4):
        answer = tenant.post(f"/smartlock/{lock}/auth/{key['id']}", json={"name": f"Name {index}"})
        assert answer.status_code == 204, answer.text
    assert get_key(tenant, key)["syncState"] == "pending"
    assert get_key(tenant, key)["name"] == "Name 3"
    state = emulator(tenant, lock)
    assert state["pendingOperations"] >= 1
    assert state["auths"] == 0
    assert device_rows(quick, lock) == {}

    assert emulate(tenant, lock, online=True)["online"] is True

    def applied() -> dict[str, Any] | None:
        current = get_key(tenant, key)
        return current if current["syncState"] == "applied" else None

    final = wait_until(applied, timeout=10, what="the key to be applied")
    assert isinstance(final["authId"], int)
    assert final["name"] == "Name 3"
    assert "operationId" not in final
    held = device_rows(quick, lock)
    assert held[key["id"]]["name"] == "Name 3"
    assert held[key["id"]]["slot"] == final["authId"]
    state = wait_until(
        lambda: (s := emulator(tenant, lock))["pendingOperations"] == 0 and s,
        what="the queue to drain",
    )
    assert state["auths"] == 1


# --- keypad entry -----------------------------------------------------------------------------


def test_code_opens_inside_its_window(tenant: Tenant, code_key: dict[str, Any]) -> None:
    lock = tenant.keypad_lock
    decision = keypad(tenant, lock, 345678, MONDAY_10_VIENNA)
    assert decision["opened"] is True
    assert decision["reason"]
    assert decision["state"] == UNLOCKED
    entry = log_entry(tenant, lock, decision["logId"])
    assert entry["action"] == 1
    assert entry["trigger"] == TRIGGER_KEYPAD
    assert entry["state"] == LOG_SUCCESS
    assert entry["source"] == 1
    assert entry["authId"] == code_key["id"]
    assert entry["name"] == "Cleaner"
    assert entry["date"] == "2026-12-07T09:00:00.000Z"
    assert "error" not in entry


def test_code_outside_the_daily_window_is_refused(tenant: Tenant, code_key: dict[str, Any]) -> None:
    decision = keypad(tenant, tenant.keypad_lock, 345678, MONDAY_1930_VIENNA)
    assert decision["opened"] is False
    assert "window" in decision["reason"]
    assert "19:30" in decision["reason"]  # the lock's local time, not 18:30 UTC
    assert decision["state"] == LOCKED
    entry = log_entry(tenant, tenant.keypad_lock, decision["logId"])
    assert (entry["state"], entry["trigger"], entry["source"]) == (LOG_REJECTED, 255, 1)
    assert entry["authId"] == code_key["id"]
    assert "window" in entry["error"]


def test_code_on_a_day_not_allowed_is_refused(tenant: Tenant, code_key: dict[str, Any]) -> None:
    decision = keypad(tenant, tenant.keypad_lock, 345678, TUESDAY_10_VIENNA)
    assert decision["opened"] is False
    assert "Tuesday" in decision["reason"]
    entry = log_entry(tenant, tenant.keypad_lock, decision["logId"])
    assert (entry["state"], entry["trigger"], entry["source"]) == (LOG_REJECTED, 255, 1)
    assert entry["authId"] == code_key["id"]


def test_window_follows_the_local_clock_in_summer(tenant: Tenant, code_key: dict[str, Any]) -> None:
    # Monday 29 June 2026, 06:30 UTC = 08:30 CEST: inside 08:00–18:00 Vienna time.
    assert keypad(tenant, tenant.keypad_lock, 345678, "2026-06-29T06:30:00Z")["opened"] is True
    # Monday 7 December 2026, 06:30 UTC = 07:30 CET: before the window.
    early = keypad(tenant, tenant.keypad_lock, 345678, "2026-12-07T06:30:00Z")
    assert early["opened"] is False
    assert "07:30" in early["reason"]


def test_an_unknown_code_is_refused_and_logged_without_a_key(
    tenant: Tenant, code_key: dict[str, Any]
) -> None:
    decision = keypad(tenant, tenant.keypad_lock, 999999, MONDAY_10_VIENNA)
    assert decision["opened"] is False
    assert decision["reason"].startswith("refused")
    assert decision["state"] == LOCKED
    entry = log_entry(tenant, tenant.keypad_lock, decision["logId"])
    assert (entry["state"], entry["trigger"], entry["source"]) == (LOG_REJECTED, 255, 1)
    assert entry["action"] == 1
    assert "authId" not in entry
    assert entry["error"]
    assert get_key(tenant, code_key)["lockCount"] == 0


def test_a_disabled_code_is_refused(tenant: Tenant, code_key: dict[str, Any]) -> None:
    answer = tenant.post(
        f"/smartlock/{tenant.keypad_lock}/auth/{code_key['id']}", json={"enabled": False}
    )
    assert answer.status_code == 204, answer.text
    assert get_key(tenant, code_key)["syncState"] == "applied"
    decision = keypad(tenant, tenant.keypad_lock, 345678, MONDAY_10_VIENNA)
    assert decision["opened"] is False
    assert "disabled" in decision["reason"]
    entry = log_entry(tenant, tenant.keypad_lock, decision["logId"])
    assert (entry["state"], entry["trigger"], entry["source"]) == (LOG_REJECTED, 255, 1)
    assert entry["authId"] == code_key["id"]
    assert get_key(tenant, code_key)["lockCount"] == 0

    answer = tenant.post(
        f"/smartlock/{tenant.keypad_lock}/auth/{code_key['id']}", json={"enabled": True}
    )
    assert answer.status_code == 204, answer.text
    assert keypad(tenant, tenant.keypad_lock, 345678, MONDAY_10_VIENNA)["opened"] is True


def test_a_successful_use_counts_on_the_key(tenant: Tenant, code_key: dict[str, Any]) -> None:
    assert code_key["lockCount"] == 0
    assert "lastActiveDate" not in code_key
    assert keypad(tenant, tenant.keypad_lock, 345678, MONDAY_10_VIENNA)["opened"] is True
    key = get_key(tenant, code_key)
    assert key["lockCount"] == 1
    assert key["lastActiveDate"] == "2026-12-07T09:00:00.000Z"

    # a refused attempt does not count
    assert keypad(tenant, tenant.keypad_lock, 345678, TUESDAY_10_VIENNA)["opened"] is False
    assert get_key(tenant, code_key)["lockCount"] == 1

    assert keypad(tenant, tenant.keypad_lock, 345678, "2026-12-14T10:00:00Z")["opened"] is True
    key = get_key(tenant, code_key)
    assert key["lockCount"] == 2
    assert key["lastActiveDate"] == "2026-12-14T10:00:00.000Z"
    listed = [k for k in tenant.keys(tenant.keypad_lock) if k["id"] == code_key["id"]]
    assert listed[0]["lockCount"] == 2


def test_at_defaults_to_now(tenant: Tenant) -> None:
    key = tenant.create_key(
        tenant.keypad_lock, name="Always", type=13, code=456789, remoteAllowed=False
    )
    decision = keypad(tenant, tenant.keypad_lock, 456789)
    assert decision["opened"] is True
    assert "lastActiveDate" in get_key(tenant, key)


def test_keypad_entry_on_a_lock_without_keypad_is_409(tenant: Tenant) -> None:
    answer = tenant.post(
        f"/emulator/smartlock/{tenant.plain_lock}/keypad",
        json={"code": 345678, "at": MONDAY_10_VIENNA},
    )
    body = refused(answer, 409, error="device_error")
    assert "keypad" in body["detailMessage"]


def test_keypad_entry_on_an_offline_lock_is_409(tenant: Tenant, code_key: dict[str, Any]) -> None:
    emulate(tenant, tenant.keypad_lock, online=False)
    answer = tenant.post(
        f"/emulator/smartlock/{tenant.keypad_lock}/keypad",
        json={"code": 345678, "at": MONDAY_10_VIENNA},
    )
    refused(answer, 409, error="lock_offline")
    assert get_key(tenant, code_key)["lockCount"] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "code"), ({"code": "abc"}, "code"), ({"code": 345678, "at": "yesterday"}, "at")],
)
def test_bad_keypad_body_is_400(tenant: Tenant, body: dict[str, Any], field: str) -> None:
    answer = tenant.post(f"/emulator/smartlock/{tenant.keypad_lock}/keypad", json=body)
    refused(answer, 400, error="validation_failed", field=field)


# --- app keys ---------------------------------------------------------------------------------


def test_remote_use_of_a_key_without_remote_allowed_is_refused(
    tenant: Tenant, app_key: dict[str, Any], user: int
) -> None:
    lock = tenant.keypad_lock
    decision = use_app(tenant, lock, authId=app_key["authId"], action=1, remote=True)
    assert decision["opened"] is False
    assert "remote" in decision["reason"]
    assert decision["state"] == LOCKED
    entry = log_entry(tenant, lock, decision["logId"])
    assert (entry["state"], entry["trigger"]) == (LOG_REJECTED, TRIGGER_APP)
    assert entry["authId"] == app_key["id"]
    assert entry["accountUserId"] == user
    assert get_key(tenant, app_key)["lockCount"] == 0


def test_use_at_the_door_opens(tenant: Tenant, app_key: dict[str, Any], user: int) -> None:
    lock = tenant.keypad_lock
    decision = use_app(
        tenant, lock, authId=app_key["authId"], action=1, remote=False, at=MONDAY_10_VIENNA
    )
    assert decision["opened"] is True
    assert decision["state"] == UNLOCKED
    entry = log_entry(tenant, lock, decision["logId"])
    assert (entry["action"], entry["state"], entry["trigger"]) == (1, LOG_SUCCESS, TRIGGER_APP)
    assert entry["authId"] == app_key["id"]
    assert entry["accountUserId"] == user
    assert entry["name"] == "Guest"
    assert entry["date"] == "2026-12-07T09:00:00.000Z"
    key = get_key(tenant, app_key)
    assert key["lockCount"] == 1
    assert key["lastActiveDate"] == "2026-12-07T09:00:00.000Z"

    # locking with the key does not open the door, but it is a use
    decision = use_app(tenant, lock, authId=app_key["authId"], action=2, remote=False)
    assert decision["opened"] is False
    assert decision["state"] == LOCKED
    assert get_key(tenant, app_key)["lockCount"] == 2


def test_remote_use_of_a_key_with_remote_allowed_opens(tenant: Tenant, user: int) -> None:
    key = tenant.create_key(
        tenant.plain_lock, name="Remote", accountUserId=user, remoteAllowed=True
    )
    decision = use_app(tenant, tenant.plain_lock, authId=key["authId"], action=1, remote=True)
    assert decision["opened"] is True


def test_an_empty_slot_is_refused(tenant: Tenant, app_key: dict[str, Any]) -> None:
    lock = tenant.keypad_lock
    decision = use_app(tenant, lock, authId=app_key["authId"] + 10, action=1, remote=False)
    assert decision["opened"] is False
    assert "empty" in decision["reason"]
    assert decision["state"] == LOCKED
    entry = log_entry(tenant, lock, decision["logId"])
    assert (entry["state"], entry["trigger"]) == (LOG_REJECTED, TRIGGER_APP)
    assert "authId" not in entry
    # the owner's own slot 1 is no key of ours either
    assert use_app(tenant, lock, authId=1, action=1)["opened"] is False


def test_a_keypad_codes_slot_is_not_an_app_key(tenant: Tenant, code_key: dict[str, Any]) -> None:
    decision = use_app(
        tenant, tenant.keypad_lock, authId=code_key["authId"], action=1, remote=False
    )
    assert decision["opened"] is False
    assert "keypad code" in decision["reason"]
    entry = log_entry(tenant, tenant.keypad_lock, decision["logId"])
    assert (entry["state"], entry["trigger"]) == (LOG_REJECTED, TRIGGER_APP)
    assert get_key(tenant, code_key)["lockCount"] == 0


def test_app_key_with_an_unknown_action_is_400(tenant: Tenant, app_key: dict[str, Any]) -> None:
    answer = tenant.post(
        f"/emulator/smartlock/{tenant.keypad_lock}/app",
        json={"authId": app_key["authId"], "action": 9},
    )
    refused(answer, 400, error="validation_failed", field="action")


def test_a_deleted_key_no_longer_opens(tenant: Tenant, app_key: dict[str, Any]) -> None:
    answer = tenant.delete(f"/smartlock/{tenant.keypad_lock}/auth/{app_key['id']}")
    assert answer.status_code == 204, answer.text
    decision = use_app(tenant, tenant.keypad_lock, authId=app_key["authId"], action=1)
    assert decision["opened"] is False


# --- the button -------------------------------------------------------------------------------


def test_the_button_toggles_the_lock(tenant: Tenant) -> None:
    lock = tenant.plain_lock
    answer = tenant.post(f"/emulator/smartlock/{lock}/button")
    assert answer.status_code == 200, answer.text
    first = answer.json()
    assert first["opened"] is True
    assert first["state"] == UNLOCKED
    second = tenant.post(f"/emulator/smartlock/{lock}/button").json()
    assert second["opened"] is False
    assert second["state"] == LOCKED
    one = log_entry(tenant, lock, first["logId"])
    two = log_entry(tenant, lock, second["logId"])
    assert (one["action"], one["trigger"], one["state"]) == (1, TRIGGER_BUTTON, LOG_SUCCESS)
    assert (two["action"], two["trigger"], two["state"]) == (2, TRIGGER_BUTTON, LOG_SUCCESS)
    assert emulator(tenant, lock)["state"] == LOCKED


# --- POST /smartlock/{id}/sync ----------------------------------------------------------------


def test_sync_writes_a_key_the_lock_lost(
    tenant: Tenant, runtime: Runtime, code_key: dict[str, Any]
) -> None:
    lock = tenant.keypad_lock
    with runtime.db.session() as session:
        row = session.get(SimulatedAuth, (lock, code_key["authId"]))
        assert row is not None
        session.delete(row)
    assert code_key["id"] not in device_rows(runtime, lock)
    assert keypad(tenant, lock, 345678, MONDAY_10_VIENNA)["opened"] is False

    answer = tenant.post(f"/smartlock/{lock}/sync")
    assert answer.status_code == 204, answer.text
    assert answer.content == b""
    wait_until(lambda: code_key["id"] in device_rows(runtime, lock), what="the key to return")
    held = device_rows(runtime, lock)[code_key["id"]]
    assert held["code"] == 345678
    assert held["name"] == "Cleaner"
    key = wait_until(
        lambda: (k := get_key(tenant, code_key))["syncState"] == "applied" and k,
        what="the key to be applied again",
    )
    assert key["authId"] == held["slot"]
    assert keypad(tenant, lock, 345678, MONDAY_10_VIENNA)["opened"] is True


def test_sync_removes_an_authorization_the_server_does_not_know(
    tenant: Tenant, runtime: Runtime, code_key: dict[str, Any]
) -> None:
    lock = tenant.keypad_lock
    with runtime.db.session() as session:
        session.add(
            SimulatedAuth(
                smartlock_id=lock,
                slot=40,
                auth_key=ORPHAN_KEY,
                data={"name": "Ghost", "type": 13, "code": 777777, "enabled": True},
            )
        )
    assert keypad(tenant, lock, 777777, MONDAY_10_VIENNA)["opened"] is True

    answer = tenant.post(f"/smartlock/{lock}/sync")
    assert answer.status_code == 204, answer.text
    wait_until(lambda: ORPHAN_KEY not in device_rows(runtime, lock), what="the orphan to go")
    assert code_key["id"] in device_rows(runtime, lock)
    assert get_key(tenant, code_key)["syncState"] == "applied"
    assert keypad(tenant, lock, 777777, MONDAY_10_VIENNA)["opened"] is False


def test_sync_of_a_lock_in_step_changes_nothing(
    tenant: Tenant, runtime: Runtime, code_key: dict[str, Any]
) -> None:
    before = device_rows(runtime, tenant.keypad_lock)
    assert tenant.post(f"/smartlock/{tenant.keypad_lock}/sync").status_code == 204
    assert device_rows(runtime, tenant.keypad_lock) == before
    assert emulator(tenant, tenant.keypad_lock)["pendingOperations"] == 0


def test_sync_of_an_offline_lock_is_409(tenant: Tenant) -> None:
    emulate(tenant, tenant.keypad_lock, online=False)
    answer = tenant.post(f"/smartlock/{tenant.keypad_lock}/sync")
    refused(answer, 409, error="lock_offline")


def test_sync_of_a_foreign_lock_is_404(tenant: Tenant, other_tenant: Tenant) -> None:
    answer = tenant.post(f"/smartlock/{other_tenant.keypad_lock}/sync")
    refused(answer, 404, error="not_found")
