"""Lock actions over HTTP (POST /smartlock/{id}/action, /action/lock, /action/unlock): the
virtual lock moves, GET /smartlock/{id} shows it, and every attempt is in the activity log."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conftest import Tenant

TRIGGER_WEB = 4
UNLOCKED, LOCKED, MOTOR_BLOCKED = 3, 1, 254
LOG_SUCCESS, LOG_MOTOR_BLOCKED, LOG_BUSY = 0, 1, 4
UNKNOWN_LOCK = 4_294_967_295


def lock_state(tenant: Tenant, smartlock_id: int) -> dict[str, Any]:
    answer = tenant.get(f"/smartlock/{smartlock_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def log_of(tenant: Tenant, smartlock_id: int, **params: Any) -> list[dict[str, Any]]:
    answer = tenant.get(f"/smartlock/{smartlock_id}/log", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def emulate(tenant: Tenant, smartlock_id: int, **changes: Any) -> dict[str, Any]:
    answer = tenant.post(f"/emulator/smartlock/{smartlock_id}", json=changes)
    assert answer.status_code == 200, answer.text
    return answer.json()


def refused(
    answer: httpx.Response, status: int, *, error: str, field: str | None = None
) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["status"] == status
    assert body["error"] == error, body
    if field is not None:
        assert body["field"] == field, body
    assert body["detailMessage"]
    return body


# --- success ----------------------------------------------------------------------------------


def test_unlock_action_moves_the_lock_and_shows_web_trigger(tenant: Tenant) -> None:
    lock = tenant.plain_lock
    assert lock_state(tenant, lock)["state"]["state"] == LOCKED
    answer = tenant.post(f"/smartlock/{lock}/action", json={"action": 1})
    assert answer.status_code == 204, answer.text
    assert answer.content == b""
    state = lock_state(tenant, lock)["state"]
    assert state["state"] == UNLOCKED
    assert state["lastAction"] == 1
    assert state["trigger"] == TRIGGER_WEB


def test_lock_action_locks_again(tenant: Tenant) -> None:
    lock = tenant.plain_lock
    assert tenant.post(f"/smartlock/{lock}/action", json={"action": 1}).status_code == 204
    answer = tenant.post(f"/smartlock/{lock}/action", json={"action": 2})
    assert answer.status_code == 204, answer.text
    state = lock_state(tenant, lock)["state"]
    assert state["state"] == LOCKED
    assert state["lastAction"] == 2
    assert state["trigger"] == TRIGGER_WEB


def test_option_is_accepted_with_the_action(tenant: Tenant) -> None:
    answer = tenant.post(f"/smartlock/{tenant.plain_lock}/action", json={"action": 1, "option": 2})
    assert answer.status_code == 204, answer.text
    assert lock_state(tenant, tenant.plain_lock)["state"]["state"] == UNLOCKED


def test_unlock_and_lock_shortcuts(tenant: Tenant) -> None:
    lock = tenant.keypad_lock
    answer = tenant.post(f"/smartlock/{lock}/action/unlock")
    assert answer.status_code == 204, answer.text
    assert answer.content == b""
    state = lock_state(tenant, lock)["state"]
    assert (state["state"], state["lastAction"], state["trigger"]) == (UNLOCKED, 1, TRIGGER_WEB)

    answer = tenant.post(f"/smartlock/{lock}/action/lock")
    assert answer.status_code == 204, answer.text
    state = lock_state(tenant, lock)["state"]
    assert (state["state"], state["lastAction"], state["trigger"]) == (LOCKED, 2, TRIGGER_WEB)

    entries = log_of(tenant, lock)
    assert [(e["action"], e["trigger"], e["state"]) for e in entries] == [
        (2, TRIGGER_WEB, LOG_SUCCESS),
        (1, TRIGGER_WEB, LOG_SUCCESS),
    ]


def test_action_only_moves_the_lock_it_names(tenant: Tenant) -> None:
    assert tenant.post(f"/smartlock/{tenant.plain_lock}/action/unlock").status_code == 204
    assert lock_state(tenant, tenant.keypad_lock)["state"]["state"] == LOCKED
    assert log_of(tenant, tenant.keypad_lock) == []


# --- refused requests -------------------------------------------------------------------------


@pytest.mark.parametrize("action", [0, 6, 9, 255])
def test_unknown_action_is_400_on_field_action(tenant: Tenant, action: int) -> None:
    answer = tenant.post(f"/smartlock/{tenant.plain_lock}/action", json={"action": action})
    body = refused(answer, 400, error="validation_failed", field="action")
    assert body["rule"] == "enum"
    assert str(action) in body["detailMessage"]
    assert lock_state(tenant, tenant.plain_lock)["state"]["state"] == LOCKED
    assert log_of(tenant, tenant.plain_lock) == []


@pytest.mark.parametrize("option", [8, -1, 64])
def test_unknown_option_is_400_on_field_option(tenant: Tenant, option: int) -> None:
    answer = tenant.post(
        f"/smartlock/{tenant.plain_lock}/action", json={"action": 1, "option": option}
    )
    body = refused(answer, 400, error="validation_failed", field="option")
    assert body["rule"] == "range"
    assert lock_state(tenant, tenant.plain_lock)["state"]["state"] == LOCKED
    assert log_of(tenant, tenant.plain_lock) == []


def test_missing_action_is_400(tenant: Tenant) -> None:
    answer = tenant.post(f"/smartlock/{tenant.plain_lock}/action", json={"option": 0})
    refused(answer, 400, error="validation_failed", field="action")


def test_action_needs_scope_smartlock_action(tenant: Tenant) -> None:
    token = tenant.token_with("smartlock", "smartlock.log", "emulator")
    headers = {"Authorization": f"Bearer {token}"}
    lock = tenant.plain_lock
    for path, body in (
        (f"/smartlock/{lock}/action", {"action": 1}),
        (f"/smartlock/{lock}/action/unlock", None),
        (f"/smartlock/{lock}/action/lock", None),
        (f"/smartlock/{lock}/sync", None),
    ):
        answer = tenant.client.post(path, json=body, headers=headers)
        body_ = refused(answer, 403, error="missing_scope")
        assert body_["rule"] == "scope"
        assert "smartlock.action" in body_["detailMessage"]
    assert lock_state(tenant, lock)["state"]["state"] == LOCKED
    assert log_of(tenant, lock) == []


def test_action_on_a_foreign_lock_is_404_and_moves_nothing(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    foreign = other_tenant.plain_lock
    for path, body in (
        (f"/smartlock/{foreign}/action", {"action": 1}),
        (f"/smartlock/{foreign}/action/unlock", None),
        (f"/smartlock/{foreign}/action/lock", None),
    ):
        answer = tenant.post(path, json=body)
        refused(answer, 404, error="not_found")
    assert lock_state(other_tenant, foreign)["state"]["state"] == LOCKED
    assert log_of(other_tenant, foreign) == []


def test_action_on_an_unknown_lock_is_404(tenant: Tenant) -> None:
    answer = tenant.post(f"/smartlock/{UNKNOWN_LOCK}/action", json={"action": 1})
    refused(answer, 404, error="not_found")
    answer = tenant.post(f"/smartlock/{UNKNOWN_LOCK}/action/unlock")
    refused(answer, 404, error="not_found")


# --- the device says no -----------------------------------------------------------------------


def test_offline_lock_is_409_lock_offline_and_server_state_4(tenant: Tenant) -> None:
    lock = tenant.plain_lock
    assert lock_state(tenant, lock)["serverState"] == 0
    emulate(tenant, lock, online=False)
    assert lock_state(tenant, lock)["serverState"] == 4
    for path, body in (
        (f"/smartlock/{lock}/action", {"action": 1}),
        (f"/smartlock/{lock}/action/unlock", None),
        (f"/smartlock/{lock}/action/lock", None),
    ):
        answer = tenant.post(path, json=body)
        refused(answer, 409, error="lock_offline")
    state = lock_state(tenant, lock)
    assert state["state"]["state"] == LOCKED
    emulate(tenant, lock, online=True)
    assert lock_state(tenant, lock)["serverState"] == 0
    assert tenant.post(f"/smartlock/{lock}/action/unlock").status_code == 204
    assert lock_state(tenant, lock)["state"]["state"] == UNLOCKED


def test_busy_lock_is_423_with_retry_after_and_logged(tenant: Tenant) -> None:
    lock = tenant.plain_lock
    emulate(tenant, lock, fault="busy")
    answer = tenant.post(f"/smartlock/{lock}/action", json={"action": 1})
    refused(answer, 423, error="locked")
    retry_after = answer.headers.get("Retry-After")
    assert retry_after is not None
    assert int(retry_after) > 0
    assert lock_state(tenant, lock)["state"]["state"] == LOCKED
    (entry,) = log_of(tenant, lock)
    assert (entry["action"], entry["trigger"], entry["state"]) == (1, TRIGGER_WEB, LOG_BUSY)

    emulate(tenant, lock, fault=None)
    assert tenant.post(f"/smartlock/{lock}/action", json={"action": 1}).status_code == 204
    assert lock_state(tenant, lock)["state"]["state"] == UNLOCKED


def test_motor_blocked_is_409_device_error_and_state_254(tenant: Tenant) -> None:
    lock = tenant.plain_lock
    emulate(tenant, lock, fault="motorBlocked")
    answer = tenant.post(f"/smartlock/{lock}/action", json={"action": 1})
    body = refused(answer, 409, error="device_error")
    assert "motor blocked" in body["detailMessage"]
    state = lock_state(tenant, lock)["state"]
    assert state["state"] == MOTOR_BLOCKED
    assert state["lastAction"] == 1
    assert state["trigger"] == TRIGGER_WEB
    (entry,) = log_of(tenant, lock)
    assert (entry["action"], entry["trigger"], entry["state"]) == (
        1,
        TRIGGER_WEB,
        LOG_MOTOR_BLOCKED,
    )
    assert entry["error"] == "motor blocked"


def test_every_attempt_is_logged_newest_first(tenant: Tenant) -> None:
    lock = tenant.plain_lock
    assert tenant.post(f"/smartlock/{lock}/action", json={"action": 1}).status_code == 204
    emulate(tenant, lock, fault="busy")
    assert tenant.post(f"/smartlock/{lock}/action/lock").status_code == 423
    emulate(tenant, lock, fault="motorBlocked")
    assert tenant.post(f"/smartlock/{lock}/action", json={"action": 3}).status_code == 409
    emulate(tenant, lock, fault=None)
    assert tenant.post(f"/smartlock/{lock}/action/lock").status_code == 204

    entries = log_of(tenant, lock)
    assert [(e["action"], e["trigger"], e["state"]) for e in entries] == [
        (2, TRIGGER_WEB, LOG_SUCCESS),
        (3, TRIGGER_WEB, LOG_MOTOR_BLOCKED),
        (2, TRIGGER_WEB, LOG_BUSY),
        (1, TRIGGER_WEB, LOG_SUCCESS),
    ]
    for entry in entries:
        assert entry["smartlockId"] == lock
        assert entry["deviceType"] == 0
        assert entry["autoUnlock"] is False
        assert "authId" not in entry  # no key was used: the account acted through the API
    assert "error" not in entries[0]
    assert "error" not in entries[3]
    assert lock_state(tenant, lock)["state"]["state"] == LOCKED
