"""Updating one key (POST /smartlock/{id}/auth/{keyId}): partial, with the create rules."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import Tenant, make_tenant
from keyhouse.runtime import Runtime
from keyhouse.store.models import SimulatedAuth

WINDOW = {
    "allowedFromDate": "2026-12-01T08:00:00.000Z",
    "allowedUntilDate": "2027-01-31T23:00:00.000Z",
    "allowedWeekDays": 124,
    "allowedFromTime": 480,
    "allowedUntilTime": 1080,
}


@pytest.fixture
def user(tenant: Tenant) -> int:
    return tenant.create_user()


@pytest.fixture
def code_key(tenant: Tenant) -> dict[str, Any]:
    return tenant.create_key(
        tenant.keypad_lock,
        name="Cleaner",
        type=13,
        code=345678,
        remoteAllowed=False,
        smartActionsEnabled=True,
        **WINDOW,
    )


@pytest.fixture
def app_key(tenant: Tenant, user: int) -> dict[str, Any]:
    return tenant.create_key(
        tenant.keypad_lock, name="Guest", accountUserId=user, remoteAllowed=True, **WINDOW
    )


def path_of(key: dict[str, Any]) -> str:
    return f"/smartlock/{key['smartlockId']}/auth/{key['id']}"


def read(tenant: Tenant, key: dict[str, Any]) -> dict[str, Any]:
    answer = tenant.get(path_of(key))
    assert answer.status_code == 200, answer.text
    return answer.json()


def device_data(tenant: Tenant, key: dict[str, Any]) -> dict[str, Any]:
    with tenant.runtime.db.session() as session:
        row = session.get(SimulatedAuth, (key["smartlockId"], key["authId"]))
        assert row is not None
        return dict(row.data)


def update(tenant: Tenant, key: dict[str, Any], body: Any) -> dict[str, Any]:
    """POST the update, expect 204, and return the key as read afterwards."""
    answer = tenant.post(path_of(key), json=body)
    assert answer.status_code == 204, answer.text
    assert answer.content == b""
    return read(tenant, key)


def refused(
    tenant: Tenant,
    key: dict[str, Any],
    body: Any,
    *,
    status: int = 400,
    field: str | None = None,
    rule: str | None = None,
) -> dict[str, Any]:
    """POST the update, expect the refusal, and check that no key changed."""
    before = tenant.keys()
    device_before = device_data(tenant, key)
    answer = tenant.post(path_of(key), json=body)
    assert answer.status_code == status, answer.text
    error = answer.json()
    if field is not None:
        assert error["field"] == field, error
    if rule is not None:
        assert error["rule"] == rule, error
    assert tenant.keys() == before
    assert device_data(tenant, key) == device_before
    return error


# --- partial updates --------------------------------------------------------------------------


def test_rename_keeps_the_time_window_and_code(tenant: Tenant, code_key: dict[str, Any]) -> None:
    after = update(tenant, code_key, {"name": "Cleaner (Tue)"})
    assert after["name"] == "Cleaner (Tue)"
    for field, value in WINDOW.items():
        assert after[field] == value, field
    assert after["code"] == 345678
    assert after["remoteAllowed"] is False
    assert after["smartActionsEnabled"] is True
    assert after["enabled"] is True
    device = device_data(tenant, after)
    assert device["name"] == "Cleaner (Tue)"
    assert device["code"] == 345678
    for field, value in WINDOW.items():
        assert device[field] == value, field


def test_rename_of_an_app_key_keeps_user_and_window(
    tenant: Tenant, app_key: dict[str, Any], user: int
) -> None:
    after = update(tenant, app_key, {"name": "Guest renamed"})
    assert after["accountUserId"] == user
    assert after["remoteAllowed"] is True
    for field, value in WINDOW.items():
        assert after[field] == value, field


def test_update_of_one_time_field_keeps_the_others(
    tenant: Tenant, code_key: dict[str, Any]
) -> None:
    after = update(tenant, code_key, {"allowedWeekDays": 3})
    assert after["allowedWeekDays"] == 3
    assert after["name"] == "Cleaner"
    for field in ("allowedFromDate", "allowedUntilDate", "allowedFromTime", "allowedUntilTime"):
        assert after[field] == WINDOW[field]


@pytest.mark.parametrize("spelling", ["enable", "enabled"])
def test_disable_with_either_spelling(
    tenant: Tenant, code_key: dict[str, Any], spelling: str
) -> None:
    after = update(tenant, code_key, {spelling: False})
    assert after["enabled"] is False
    assert device_data(tenant, after)["enabled"] is False
    assert after["name"] == "Cleaner"
    again = update(tenant, code_key, {spelling: True})
    assert again["enabled"] is True


def test_null_clears_allowed_until_date(tenant: Tenant, code_key: dict[str, Any]) -> None:
    after = update(tenant, code_key, {"allowedUntilDate": None})
    assert "allowedUntilDate" not in after
    assert after["allowedFromDate"] == WINDOW["allowedFromDate"]
    assert device_data(tenant, after)["allowedUntilDate"] is None


def test_null_clears_the_daily_window(tenant: Tenant, code_key: dict[str, Any]) -> None:
    after = update(tenant, code_key, {"allowedFromTime": None, "allowedUntilTime": None})
    assert "allowedFromTime" not in after
    assert "allowedUntilTime" not in after
    assert after["allowedWeekDays"] == 124


def test_dates_in_any_accepted_form(tenant: Tenant, code_key: dict[str, Any]) -> None:
    after = update(
        tenant,
        code_key,
        {"allowedFromDate": "2026-11-01T09:00:00+01:00", "allowedUntilDate": "2026-11-30T08:00Z"},
    )
    assert after["allowedFromDate"] == "2026-11-01T08:00:00.000Z"
    assert after["allowedUntilDate"] == "2026-11-30T08:00:00.000Z"


@pytest.mark.parametrize("field", ["name", "enabled", "remoteAllowed", "smartActionsEnabled"])
def test_null_for_a_field_that_cannot_be_cleared_is_refused(
    tenant: Tenant, code_key: dict[str, Any], field: str
) -> None:
    refused(tenant, code_key, {field: None}, field=field, rule="not_nullable")


def test_null_enable_spelling_is_refused(tenant: Tenant, code_key: dict[str, Any]) -> None:
    refused(tenant, code_key, {"enable": None}, field="enabled", rule="not_nullable")


def test_change_code(tenant: Tenant, code_key: dict[str, Any]) -> None:
    after = update(tenant, code_key, {"code": 456789})
    assert after["code"] == 456789
    assert device_data(tenant, after)["code"] == 456789
    for field, value in WINDOW.items():
        assert after[field] == value, field


def test_keeping_the_own_code_is_not_a_conflict(tenant: Tenant, code_key: dict[str, Any]) -> None:
    after = update(tenant, code_key, {"code": 345678, "name": "Same code"})
    assert after["code"] == 345678
    assert after["name"] == "Same code"


def test_change_code_to_one_held_by_another_key_is_a_conflict(
    tenant: Tenant, code_key: dict[str, Any]
) -> None:
    other = tenant.create_key(
        tenant.keypad_lock, name="Other", type=13, code=456789, remoteAllowed=False
    )
    error = refused(tenant, code_key, {"code": 456789}, status=409, field="code")
    assert error["rule"] == "unique_on_lock"
    assert other["id"] in error["detailMessage"]


def test_code_held_on_another_lock_is_no_conflict(
    tenant: Tenant, code_key: dict[str, Any], client: TestClient, runtime: Runtime
) -> None:
    stranger = make_tenant(client, runtime, "neighbour@example.org")
    stranger.create_key(
        stranger.keypad_lock, name="Theirs", type=13, code=456789, remoteAllowed=False
    )
    assert update(tenant, code_key, {"code": 456789})["code"] == 456789


@pytest.mark.parametrize(
    ("code", "rule"),
    [(12345, "six_digits"), (123450, "digits_1_to_9"), (123456, "forbidden")],
)
def test_change_code_to_an_invalid_one_is_refused(
    tenant: Tenant, code_key: dict[str, Any], code: int, rule: str
) -> None:
    refused(tenant, code_key, {"code": code}, field="code", rule=rule)


def test_clearing_the_code_of_a_keypad_code_is_refused(
    tenant: Tenant, code_key: dict[str, Any]
) -> None:
    refused(tenant, code_key, {"code": None}, field="code", rule="required")


def test_code_on_an_app_key_is_refused(tenant: Tenant, app_key: dict[str, Any]) -> None:
    refused(tenant, app_key, {"code": 456789}, field="code", rule="forbidden")


def test_clearing_the_user_of_an_app_key_is_refused(
    tenant: Tenant, app_key: dict[str, Any]
) -> None:
    refused(tenant, app_key, {"accountUserId": None}, field="accountUserId", rule="required")


def test_unknown_user_is_refused(tenant: Tenant, app_key: dict[str, Any], user: int) -> None:
    refused(
        tenant, app_key, {"accountUserId": user + 1000}, field="accountUserId", rule="not_found"
    )


def test_move_an_app_key_to_another_user(tenant: Tenant, app_key: dict[str, Any]) -> None:
    second = tenant.create_user("second@example.com", "Second")
    after = update(tenant, app_key, {"accountUserId": str(second)})
    assert after["accountUserId"] == second


def test_name_too_long_is_refused(tenant: Tenant, code_key: dict[str, Any]) -> None:
    refused(tenant, code_key, {"name": "k" * 21}, field="name", rule="max_length")
    assert update(tenant, code_key, {"name": "k" * 20})["name"] == "k" * 20


def test_empty_name_is_refused(tenant: Tenant, code_key: dict[str, Any]) -> None:
    refused(tenant, code_key, {"name": ""}, field="name", rule="required")


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        ({"allowedWeekDays": 128}, "allowedWeekDays", "range"),
        ({"allowedWeekDays": -1}, "allowedWeekDays", "range"),
        ({"allowedFromTime": 1440}, "allowedFromTime", "range"),
        ({"allowedFromTime": 1200}, "allowedUntilTime", "order"),
        ({"allowedUntilTime": None}, "allowedUntilTime", "required"),
        ({"allowedFromTime": None}, "allowedFromTime", "required"),
        ({"allowedFromDate": "2027-02-01T00:00Z"}, "allowedUntilDate", "order"),
        ({"allowedUntilDate": "2026-11-30T00:00Z"}, "allowedUntilDate", "order"),
        ({"allowedFromDate": "2026-12-01T08:00:00"}, "allowedFromDate", "format"),
        ({"allowedUntilDate": "2026-02-30T00:00Z"}, "allowedUntilDate", "format"),
    ],
)
def test_update_that_breaks_the_time_rules_is_refused(
    tenant: Tenant, code_key: dict[str, Any], body: dict[str, Any], field: str, rule: str
) -> None:
    refused(tenant, code_key, body, field=field, rule=rule)


def test_several_problems_are_all_listed(tenant: Tenant, code_key: dict[str, Any]) -> None:
    error = refused(tenant, code_key, {"name": "k" * 30, "code": 12, "allowedWeekDays": 500})
    found = {(p.get("field"), p["rule"]) for p in error["problems"]}
    assert {("name", "max_length"), ("code", "six_digits"), ("allowedWeekDays", "range")} <= found


# --- read-only and unknown fields -------------------------------------------------------------


def test_what_was_read_can_be_posted_back_with_one_change(
    tenant: Tenant, code_key: dict[str, Any]
) -> None:
    read_back = read(tenant, code_key)
    for field in ("id", "smartlockId", "authId", "lockCount", "creationDate", "syncState"):
        assert field in read_back
    body = {**read_back, "name": "Posted back"}
    after = update(tenant, code_key, body)
    assert after["name"] == "Posted back"
    assert after["id"] == code_key["id"]
    assert after["authId"] == code_key["authId"]
    assert after["code"] == 345678
    for field, value in WINDOW.items():
        assert after[field] == value, field


def test_read_only_fields_with_other_values_are_ignored(
    tenant: Tenant, code_key: dict[str, Any]
) -> None:
    fake_operation = {
        "timestamp": 1,
        "counter": 2,
        "date": "2020-01-01T00:00:00.000Z",
        "time": 1000,
        "machineIdentifier": 3,
        "processIdentifier": 4,
        "timeSecond": 1,
    }
    after = update(
        tenant,
        code_key,
        {
            "name": "Ignored the rest",
            "id": "0" * 24,
            "smartlockId": tenant.plain_lock,
            "authId": 99,
            "lockCount": 42,
            "lastActiveDate": "2020-01-01T00:00:00.000Z",
            "creationDate": "2020-01-01T00:00:00.000Z",
            "updateDate": "2020-01-01T00:00:00.000Z",
            "operationId": fake_operation,
            "error": "none",
            "appId": 5,
            "authTypeAsString": "APP",
            "fingerprints": {"a": "b"},
            "syncState": "failed",
        },
    )
    assert after["name"] == "Ignored the rest"
    assert after["id"] == code_key["id"]
    assert after["smartlockId"] == tenant.keypad_lock
    assert after["authId"] == code_key["authId"]
    assert after["lockCount"] == 0
    assert after["creationDate"] == code_key["creationDate"]
    assert after["updateDate"] != "2020-01-01T00:00:00.000Z"
    assert after["syncState"] == "applied"
    assert "operationId" not in after
    assert "error" not in after
    assert "lastActiveDate" not in after


def test_type_cannot_be_changed(tenant: Tenant, code_key: dict[str, Any]) -> None:
    after = update(tenant, code_key, {"type": 0, "name": "Still a code"})
    assert after["type"] == 13
    assert after["name"] == "Still a code"
    assert after["code"] == 345678


def test_unknown_field_is_refused(tenant: Tenant, code_key: dict[str, Any]) -> None:
    error = refused(tenant, code_key, {"name": "x", "validUntil": "soon"}, field="validUntil")
    assert error["rule"] == "unknown_field"


@pytest.mark.parametrize("body", [[], "name", None, 3])
def test_body_that_is_not_an_object_is_refused(
    tenant: Tenant, code_key: dict[str, Any], body: Any
) -> None:
    refused(tenant, code_key, body)


# --- unknown keys and locks -------------------------------------------------------------------


def test_unknown_key_id_is_404_naming_the_id(tenant: Tenant, code_key: dict[str, Any]) -> None:
    missing = "65219648fe57075d71a6cb01"
    before = tenant.keys()
    answer = tenant.post(f"/smartlock/{tenant.keypad_lock}/auth/{missing}", json={"name": "x"})
    assert answer.status_code == 404, answer.text
    error = answer.json()
    assert missing in error["detailMessage"]
    assert error["field"] == "id"
    assert tenant.keys() == before


def test_key_on_another_lock_of_the_account_is_404(
    tenant: Tenant, code_key: dict[str, Any]
) -> None:
    before = tenant.keys()
    answer = tenant.post(
        f"/smartlock/{tenant.plain_lock}/auth/{code_key['id']}", json={"name": "x"}
    )
    assert answer.status_code == 404, answer.text
    assert code_key["id"] in answer.json()["detailMessage"]
    assert tenant.keys() == before


def test_key_of_another_account_is_not_found(
    tenant: Tenant, client: TestClient, runtime: Runtime
) -> None:
    stranger = make_tenant(client, runtime, "neighbour@example.org")
    theirs = stranger.create_key(
        stranger.keypad_lock, name="Theirs", type=13, code=345678, remoteAllowed=False
    )
    answer = tenant.post(path_of(theirs), json={"name": "Mine now"})
    assert answer.status_code in (403, 404), answer.text
    assert read(stranger, theirs)["name"] == "Theirs"


# --- dates and sync state ---------------------------------------------------------------------


def test_update_date_changes_and_creation_date_does_not(
    tenant: Tenant, code_key: dict[str, Any]
) -> None:
    time.sleep(0.01)
    after = update(tenant, code_key, {"name": "Later"})
    assert after["creationDate"] == code_key["creationDate"]
    assert after["updateDate"] > code_key["updateDate"]


def test_update_that_changes_nothing_keeps_update_date(
    tenant: Tenant, code_key: dict[str, Any]
) -> None:
    time.sleep(0.01)
    after = update(tenant, code_key, {"name": "Cleaner", "allowedWeekDays": 124})
    assert after["updateDate"] == code_key["updateDate"]
    assert after["syncState"] == "applied"


def test_after_update_the_key_is_applied_with_the_new_values(
    tenant: Tenant, code_key: dict[str, Any]
) -> None:
    after = update(
        tenant,
        code_key,
        {"name": "New", "remoteAllowed": True, "enabled": False, "allowedWeekDays": 1},
    )
    assert after["syncState"] == "applied"
    assert after["authId"] == code_key["authId"]
    assert "operationId" not in after
    assert "error" not in after
    listed = {k["id"]: k for k in tenant.keys(tenant.keypad_lock)}[code_key["id"]]
    assert listed == after
    device = device_data(tenant, after)
    assert (device["name"], device["remoteAllowed"], device["enabled"]) == ("New", True, False)
    assert device["allowedWeekDays"] == 1
    assert tenant.runtime.link.auth_count(tenant.keypad_lock) == 1
