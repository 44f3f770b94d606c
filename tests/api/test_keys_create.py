"""Creating keys on one lock (PUT /smartlock/{id}/auth): validation, restrictions, limits."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import Tenant, make_tenant
from keyhouse.runtime import Runtime

DATE_OUT = "2026-12-01T08:00:00.000Z"


def snapshot(tenant: Tenant) -> list[tuple[str, str | None]]:
    """Every key of the account with its last update, to show a refused request changed nothing."""
    listed = tenant.keys()
    return sorted((k["id"], k.get("updateDate")) for k in listed)


def refused(
    tenant: Tenant,
    body: dict[str, Any],
    *,
    status: int = 400,
    field: str | None = None,
    rule: str | None = None,
    lock: int | None = None,
) -> dict[str, Any]:
    """PUT the key, expect the refusal, and check that nothing was stored."""
    lock_id = tenant.keypad_lock if lock is None else lock
    before = snapshot(tenant)
    device_before = tenant.runtime.link.auth_count(lock_id)
    answer = tenant.put(f"/smartlock/{lock_id}/auth", json=body)
    assert answer.status_code == status, answer.text
    error = answer.json()
    if field is not None:
        assert error["field"] == field, error
    if rule is not None:
        assert error["rule"] == rule, error
    assert error["detailMessage"], error
    assert snapshot(tenant) == before
    assert tenant.runtime.link.auth_count(lock_id) == device_before
    return error


def accepted(tenant: Tenant, lock: int | None = None, **body: Any) -> dict[str, Any]:
    return tenant.create_key(tenant.keypad_lock if lock is None else lock, **body)


@pytest.fixture
def user(tenant: Tenant) -> int:
    return tenant.create_user()


def app_key(user: int, **extra: Any) -> dict[str, Any]:
    return {"name": "Guest", "accountUserId": user, "remoteAllowed": False, **extra}


def keypad_code(code: int = 345678, **extra: Any) -> dict[str, Any]:
    return {"name": "Cleaner", "type": 13, "code": code, "remoteAllowed": False, **extra}


# --- app keys: user, name, remoteAllowed, type ------------------------------------------------


def test_app_key_is_type_0_by_default(tenant: Tenant, user: int) -> None:
    key = accepted(tenant, **app_key(user))
    assert key["type"] == 0
    assert key["accountUserId"] == user
    assert key["name"] == "Guest"
    assert key["enabled"] is True
    assert key["remoteAllowed"] is False
    assert "code" not in key


def test_app_key_without_account_user_is_refused(tenant: Tenant) -> None:
    refused(
        tenant,
        {"name": "Guest", "remoteAllowed": False},
        field="accountUserId",
        rule="required",
    )


def test_app_key_for_an_unknown_user_is_refused(tenant: Tenant, user: int) -> None:
    error = refused(tenant, app_key(user + 1000), field="accountUserId", rule="not_found")
    assert str(user + 1000) in error["detailMessage"]


def test_app_key_for_a_user_of_another_account_is_refused(
    tenant: Tenant, client: TestClient, runtime: Runtime
) -> None:
    stranger = make_tenant(client, runtime, "neighbour@example.org")
    their_user = stranger.create_user("theirs@example.org")
    refused(tenant, app_key(their_user), field="accountUserId", rule="not_found")


def test_account_user_id_as_numeric_string_is_accepted(tenant: Tenant, user: int) -> None:
    key = accepted(tenant, **app_key(user, accountUserId=str(user)))
    assert key["accountUserId"] == user


def test_name_is_required(tenant: Tenant, user: int) -> None:
    body = app_key(user)
    del body["name"]
    refused(tenant, body, field="name", rule="required")


@pytest.mark.parametrize("name", ["", "   "])
def test_empty_name_is_refused(tenant: Tenant, user: int, name: str) -> None:
    refused(tenant, app_key(user, name=name), field="name", rule="required")


def test_name_of_33_characters_is_refused(tenant: Tenant, user: int) -> None:
    error = refused(tenant, app_key(user, name="n" * 33), field="name", rule="max_length")
    assert "32" in error["detailMessage"]


def test_name_of_32_characters_is_accepted(tenant: Tenant, user: int) -> None:
    key = accepted(tenant, **app_key(user, name="n" * 32))
    assert key["name"] == "n" * 32


def test_keypad_code_name_of_21_characters_is_refused(tenant: Tenant) -> None:
    error = refused(tenant, keypad_code(name="k" * 21), field="name", rule="max_length")
    assert "20" in error["detailMessage"]


def test_keypad_code_name_of_20_characters_is_accepted(tenant: Tenant) -> None:
    key = accepted(tenant, **keypad_code(name="k" * 20))
    assert key["name"] == "k" * 20


def test_remote_allowed_is_required(tenant: Tenant, user: int) -> None:
    body = app_key(user)
    del body["remoteAllowed"]
    refused(tenant, body, field="remoteAllowed", rule="required")


@pytest.mark.parametrize("type_", [1, 3, 5, 14])
def test_types_that_cannot_be_created_are_refused(tenant: Tenant, user: int, type_: int) -> None:
    refused(tenant, app_key(user, type=type_), field="type", rule="creatable_type")


def test_fob_is_created_with_a_user(tenant: Tenant, user: int) -> None:
    key = accepted(tenant, **app_key(user, type=2, name="Fob"))
    assert key["type"] == 2


def test_null_type_means_app_key(tenant: Tenant, user: int) -> None:
    key = accepted(tenant, **app_key(user, type=None))
    assert key["type"] == 0


def test_unknown_field_is_refused(tenant: Tenant, user: int) -> None:
    refused(tenant, app_key(user, colour="red"), field="colour", rule="unknown_field")


def test_read_only_fields_are_ignored_on_create(tenant: Tenant, user: int) -> None:
    key = accepted(
        tenant,
        **app_key(user, id="0" * 24, authId=99, lockCount=7, syncState="failed", smartlockId=1),
    )
    assert key["id"] != "0" * 24
    assert key["lockCount"] == 0
    assert key["smartlockId"] == tenant.keypad_lock
    assert key["syncState"] == "applied"


def test_unknown_lock_is_refused(tenant: Tenant, user: int) -> None:
    before = snapshot(tenant)
    answer = tenant.put("/smartlock/999999/auth", json=app_key(user))
    assert answer.status_code in (403, 404), answer.text
    assert answer.json()["field"] == "smartlockId"
    assert snapshot(tenant) == before


def test_another_accounts_lock_is_refused(
    tenant: Tenant, client: TestClient, runtime: Runtime
) -> None:
    stranger = make_tenant(client, runtime, "neighbour@example.org")
    before = snapshot(stranger)
    answer = tenant.put(f"/smartlock/{stranger.keypad_lock}/auth", json=keypad_code())
    assert answer.status_code in (403, 404), answer.text
    assert snapshot(stranger) == before


# --- keypad codes -------------------------------------------------------------------------


def test_keypad_code_is_created(tenant: Tenant) -> None:
    key = accepted(tenant, **keypad_code(345678))
    assert key["type"] == 13
    assert key["code"] == 345678
    assert "accountUserId" not in key


def test_keypad_code_on_a_lock_without_keypad_is_refused(tenant: Tenant) -> None:
    refused(tenant, keypad_code(), lock=tenant.plain_lock, field="type", rule="keypad_required")


def test_keypad_code_without_code_is_refused(tenant: Tenant) -> None:
    body = keypad_code()
    del body["code"]
    refused(tenant, body, field="code", rule="required")


@pytest.mark.parametrize(
    ("code", "rule"),
    [
        (12345, "six_digits"),
        (1234567, "six_digits"),
        (123450, "digits_1_to_9"),
        (345670, "digits_1_to_9"),
        (123456, "forbidden"),
        (129999, "forbidden"),
    ],
)
def test_invalid_keypad_codes_are_refused(tenant: Tenant, code: int, rule: str) -> None:
    error = refused(tenant, keypad_code(code), field="code", rule=rule)
    assert str(code) in error["detailMessage"]


@pytest.mark.parametrize("code", [345678, 111111, 999999, 213456])
def test_valid_keypad_codes_are_accepted(tenant: Tenant, code: int) -> None:
    assert accepted(tenant, **keypad_code(code))["code"] == code


def test_code_on_an_app_key_is_refused(tenant: Tenant, user: int) -> None:
    refused(tenant, app_key(user, code=345678), field="code", rule="forbidden")


def test_duplicate_keypad_code_on_the_same_lock_is_a_conflict(tenant: Tenant) -> None:
    first = accepted(tenant, **keypad_code(345678, name="First"))
    error = refused(tenant, keypad_code(345678, name="Second"), status=409, field="code")
    assert error["rule"] == "unique_on_lock"
    assert first["id"] in error["detailMessage"]


def test_same_keypad_code_on_another_accounts_lock_is_fine(
    tenant: Tenant, client: TestClient, runtime: Runtime
) -> None:
    accepted(tenant, **keypad_code(345678))
    stranger = make_tenant(client, runtime, "neighbour@example.org")
    key = stranger.create_key(stranger.keypad_lock, **keypad_code(345678))
    assert key["code"] == 345678
    assert key["syncState"] == "applied"


def test_keypad_code_may_have_a_user(tenant: Tenant, user: int) -> None:
    key = accepted(tenant, **keypad_code(accountUserId=user))
    assert key["accountUserId"] == user


# --- time restrictions ----------------------------------------------------------------------


@pytest.mark.parametrize("mask", [128, -1, 1000])
def test_week_day_mask_out_of_range_is_refused(tenant: Tenant, mask: int) -> None:
    refused(tenant, keypad_code(allowedWeekDays=mask), field="allowedWeekDays", rule="range")


@pytest.mark.parametrize("mask", [0, 1, 64, 124, 127])
def test_week_day_masks_in_range_are_accepted(tenant: Tenant, mask: int) -> None:
    assert accepted(tenant, **keypad_code(allowedWeekDays=mask))["allowedWeekDays"] == mask


def test_from_time_1440_is_refused(tenant: Tenant) -> None:
    refused(
        tenant,
        keypad_code(allowedFromTime=1440, allowedUntilTime=1439),
        field="allowedFromTime",
        rule="range",
    )


def test_until_time_1440_is_refused(tenant: Tenant) -> None:
    refused(
        tenant,
        keypad_code(allowedFromTime=0, allowedUntilTime=1440),
        field="allowedUntilTime",
        rule="range",
    )


def test_from_time_without_until_time_is_refused(tenant: Tenant) -> None:
    refused(tenant, keypad_code(allowedFromTime=480), field="allowedUntilTime", rule="required")


def test_until_time_without_from_time_is_refused(tenant: Tenant) -> None:
    refused(tenant, keypad_code(allowedUntilTime=480), field="allowedFromTime", rule="required")


def test_from_time_after_until_time_is_refused(tenant: Tenant) -> None:
    refused(
        tenant,
        keypad_code(allowedFromTime=600, allowedUntilTime=500),
        field="allowedUntilTime",
        rule="order",
    )


def test_equal_non_zero_times_are_refused(tenant: Tenant) -> None:
    refused(
        tenant,
        keypad_code(allowedFromTime=600, allowedUntilTime=600),
        field="allowedUntilTime",
        rule="order",
    )


def test_times_0_and_0_mean_no_daily_restriction(tenant: Tenant) -> None:
    key = accepted(tenant, **keypad_code(allowedFromTime=0, allowedUntilTime=0))
    assert key["allowedFromTime"] == 0
    assert key["allowedUntilTime"] == 0


def test_full_day_window_is_accepted(tenant: Tenant) -> None:
    key = accepted(tenant, **keypad_code(allowedFromTime=0, allowedUntilTime=1439))
    assert (key["allowedFromTime"], key["allowedUntilTime"]) == (0, 1439)


@pytest.mark.parametrize(
    "date",
    [
        "2026-12-01T08:00:00Z",
        "2026-12-01T08:00Z",
        "2026-12-01T09:00:00+01:00",
        "2026-12-01T08:00:00.000Z",
        "2026-12-01T03:00:00-05:00",
    ],
)
def test_date_forms_are_accepted_and_listed_in_utc(tenant: Tenant, date: str) -> None:
    key = accepted(
        tenant, **keypad_code(allowedFromDate=date, allowedUntilDate=date[:3] + "7" + date[4:])
    )
    assert key["allowedFromDate"] == DATE_OUT
    assert key["allowedUntilDate"] == "2027-12-01T08:00:00.000Z"


@pytest.mark.parametrize("field", ["allowedFromDate", "allowedUntilDate"])
def test_date_without_zone_is_refused(tenant: Tenant, field: str) -> None:
    error = refused(
        tenant, keypad_code(**{field: "2026-12-01T08:00:00"}), field=field, rule="format"
    )
    assert "time zone" in error["detailMessage"]


@pytest.mark.parametrize(
    "date", ["2026-02-30T00:00Z", "2026-13-01T00:00Z", "yesterday", "2026-12-01", ""]
)
def test_impossible_or_malformed_dates_are_refused(tenant: Tenant, date: str) -> None:
    refused(tenant, keypad_code(allowedFromDate=date), field="allowedFromDate", rule="format")


def test_date_that_is_not_a_string_is_refused(tenant: Tenant) -> None:
    error = refused(tenant, keypad_code(allowedFromDate=20261201))
    assert error["field"] == "allowedFromDate"


def test_until_date_before_from_date_is_refused(tenant: Tenant) -> None:
    refused(
        tenant,
        keypad_code(allowedFromDate="2026-12-02T00:00Z", allowedUntilDate="2026-12-01T00:00Z"),
        field="allowedUntilDate",
        rule="order",
    )


def test_until_date_equal_to_from_date_is_refused(tenant: Tenant) -> None:
    refused(
        tenant,
        keypad_code(
            allowedFromDate="2026-12-01T09:00:00+01:00", allowedUntilDate="2026-12-01T08:00Z"
        ),
        field="allowedUntilDate",
        rule="order",
    )


def test_explicit_nulls_mean_no_restriction(tenant: Tenant) -> None:
    key = accepted(
        tenant,
        **keypad_code(
            allowedFromDate=None,
            allowedUntilDate=None,
            allowedWeekDays=None,
            allowedFromTime=None,
            allowedUntilTime=None,
            smartActionsEnabled=None,
        ),
    )
    for field in (
        "allowedFromDate",
        "allowedUntilDate",
        "allowedWeekDays",
        "allowedFromTime",
        "allowedUntilTime",
    ):
        assert field not in key


def test_created_key_keeps_every_restriction(tenant: Tenant, user: int) -> None:
    key = accepted(
        tenant,
        name="Weekday cleaner",
        accountUserId=user,
        remoteAllowed=True,
        smartActionsEnabled=True,
        allowedFromDate="2026-12-01T08:00Z",
        allowedUntilDate="2027-01-31T23:00:00.000Z",
        allowedWeekDays=124,
        allowedFromTime=480,
        allowedUntilTime=1080,
    )
    assert key["name"] == "Weekday cleaner"
    assert key["remoteAllowed"] is True
    assert key["smartActionsEnabled"] is True
    assert key["allowedFromDate"] == DATE_OUT
    assert key["allowedUntilDate"] == "2027-01-31T23:00:00.000Z"
    assert key["allowedWeekDays"] == 124
    assert key["allowedFromTime"] == 480
    assert key["allowedUntilTime"] == 1080
    # And it reads the same through the single-key endpoint.
    single = tenant.get(f"/smartlock/{tenant.keypad_lock}/auth/{key['id']}")
    assert single.status_code == 200, single.text
    assert single.json() == key


def test_created_keypad_code_keeps_every_restriction_on_the_device(tenant: Tenant) -> None:
    from keyhouse.store.models import SimulatedAuth

    key = accepted(
        tenant,
        **keypad_code(
            374829,
            allowedFromDate="2026-12-01T09:00:00+01:00",
            allowedUntilDate="2026-12-24T00:00Z",
            allowedWeekDays=3,
            allowedFromTime=540,
            allowedUntilTime=720,
        ),
    )
    with tenant.runtime.db.session() as session:
        row = session.get(SimulatedAuth, (tenant.keypad_lock, key["authId"]))
        assert row is not None
        data = dict(row.data)
    assert data["code"] == 374829
    assert data["allowedFromDate"] == DATE_OUT
    assert data["allowedUntilDate"] == "2026-12-24T00:00:00.000Z"
    assert (data["allowedWeekDays"], data["allowedFromTime"], data["allowedUntilTime"]) == (
        3,
        540,
        720,
    )


def test_smart_actions_default_to_false(tenant: Tenant, user: int) -> None:
    key = accepted(tenant, **app_key(user))
    assert key["smartActionsEnabled"] is False


def test_several_problems_are_all_listed(tenant: Tenant) -> None:
    error = refused(
        tenant,
        {
            "type": 13,
            "name": "x" * 40,
            "code": 123450,
            "remoteAllowed": False,
            "allowedWeekDays": 200,
        },
    )
    found = {(p.get("field"), p["rule"]) for p in error["problems"]}
    assert ("name", "max_length") in found
    assert ("code", "digits_1_to_9") in found
    assert ("allowedWeekDays", "range") in found
    assert all(p["message"] for p in error["problems"])
    assert "more problem" in error["detailMessage"]


def test_several_schema_problems_are_all_listed(tenant: Tenant) -> None:
    error = refused(tenant, {"type": 0, "colour": "red"})
    found = {(p.get("field"), p["rule"]) for p in error["problems"]}
    assert ("name", "required") in found
    assert ("remoteAllowed", "required") in found
    assert ("colour", "unknown_field") in found


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": 5, "remoteAllowed": False, "type": 13, "code": 345678}, "name"),
        ({"name": "x", "remoteAllowed": "maybe", "type": 13, "code": 345678}, "remoteAllowed"),
        ({"name": "x", "remoteAllowed": False, "type": 13, "code": "abc"}, "code"),
        ({"name": "x", "remoteAllowed": False, "type": "app"}, "type"),
    ],
)
def test_wrong_json_types_are_refused(tenant: Tenant, body: dict[str, Any], field: str) -> None:
    error = refused(tenant, body)
    assert error["field"] == field


@pytest.mark.parametrize("body", ["[]", "null", '"key"', "{", ""])
def test_body_that_is_not_an_object_is_refused(tenant: Tenant, body: str) -> None:
    before = snapshot(tenant)
    answer = tenant.put(
        f"/smartlock/{tenant.keypad_lock}/auth",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 400, answer.text
    assert snapshot(tenant) == before


def test_create_answers_204_with_an_empty_body(tenant: Tenant) -> None:
    answer = tenant.put(f"/smartlock/{tenant.keypad_lock}/auth", json=keypad_code())
    assert answer.status_code == 204
    assert answer.content == b""


def test_create_needs_the_auth_scope(tenant: Tenant) -> None:
    token = tenant.token_with("account")
    before = snapshot(tenant)
    answer = tenant.client.put(
        f"/smartlock/{tenant.keypad_lock}/auth",
        json=keypad_code(),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code in (401, 403), answer.text
    assert snapshot(tenant) == before


# --- limits ---------------------------------------------------------------------------------


def valid_codes() -> list[int]:
    """Distinct valid keypad codes: digits 1-9 only, never starting with 12."""
    found = []
    for digits in itertools.product("3456789", repeat=6):
        found.append(int("".join(digits)))
        if len(found) == 100:
            break
    return found


def fill_with_keypad_codes(tenant: Tenant, codes: list[int]) -> None:
    for index, code in enumerate(codes):
        answer = tenant.put(
            f"/smartlock/{tenant.keypad_lock}/auth",
            json={"name": f"Code {index}", "type": 13, "code": code, "remoteAllowed": False},
        )
        assert answer.status_code == 204, answer.text


def settle(tenant: Tenant, lock_id: int) -> None:
    tenant.runtime.device_worker.submit([lock_id])
    assert tenant.runtime.device_worker.wait([lock_id], 30)


def test_101st_keypad_code_is_refused(tenant: Tenant, runtime: Runtime) -> None:
    runtime.settings.confirm_wait_seconds = 0
    codes = valid_codes()
    assert len(set(codes)) == 100
    fill_with_keypad_codes(tenant, codes)
    assert len(tenant.keys(tenant.keypad_lock)) == 100
    settle(tenant, tenant.keypad_lock)  # refused() compares the device's table before and after
    error = refused(tenant, keypad_code(999999, name="One too many"), status=409, field="code")
    assert error["rule"] == "max_keypad_codes"
    # App keys still fit: the keypad limit counts keypad codes only.
    user = tenant.create_user()
    accepted(tenant, **app_key(user))
    settle(tenant, tenant.keypad_lock)
    keys = tenant.keys(tenant.keypad_lock)
    assert len(keys) == 101
    assert {k["syncState"] for k in keys} == {"applied"}
    assert runtime.link.auth_count(tenant.keypad_lock) == 101


def test_201st_key_is_refused(tenant: Tenant, runtime: Runtime) -> None:
    runtime.settings.confirm_wait_seconds = 0
    fill_with_keypad_codes(tenant, valid_codes())
    user = tenant.create_user()
    for index in range(100):
        answer = tenant.put(
            f"/smartlock/{tenant.keypad_lock}/auth",
            json={"name": f"App {index}", "accountUserId": user, "remoteAllowed": False},
        )
        assert answer.status_code == 204, answer.text
    assert len(tenant.keys(tenant.keypad_lock)) == 200
    settle(tenant, tenant.keypad_lock)  # refused() compares the device's table before and after
    error = refused(tenant, app_key(user), status=409, field="smartlockId")
    assert error["rule"] == "max_auths"
    refused(tenant, app_key(user, type=2), status=409, rule="max_auths")
    # The other lock of the account is not affected.
    runtime.settings.confirm_wait_seconds = 5
    assert accepted(tenant, lock=tenant.plain_lock, **app_key(user))["syncState"] == "applied"
    settle(tenant, tenant.keypad_lock)
    assert runtime.link.auth_count(tenant.keypad_lock) == 200


def test_deleting_a_key_makes_room_again(tenant: Tenant, runtime: Runtime) -> None:
    runtime.settings.confirm_wait_seconds = 0
    codes = valid_codes()
    fill_with_keypad_codes(tenant, codes)
    settle(tenant, tenant.keypad_lock)  # refused() compares the device's table before and after
    refused(tenant, keypad_code(999999), status=409, rule="max_keypad_codes")
    victim = tenant.keys(tenant.keypad_lock)[0]
    runtime.settings.confirm_wait_seconds = 5
    answer = tenant.delete(f"/smartlock/{tenant.keypad_lock}/auth/{victim['id']}")
    assert answer.status_code == 204, answer.text
    assert accepted(tenant, **keypad_code(999999))["syncState"] == "applied"


@pytest.mark.parametrize("field", ["accountUserId", "allowedWeekDays", "code"])
def test_true_or_false_is_not_read_as_a_number(tenant: Tenant, user: int, field: str) -> None:
    body = keypad_code(accountUserId=user) if field == "code" else app_key(user)
    body[field] = True
    error = refused(tenant, body, field=field)
    assert "must be a number, not true" in error["detailMessage"]


def test_a_code_sent_as_text_is_judged_as_written(tenant: Tenant) -> None:
    """Issue 15.11: "000000" is not reported as "code 0"."""
    body = {"name": "Zeros", "type": 13, "remoteAllowed": False, "code": "000000"}
    error = refused(tenant, body, field="code", rule="digits_1_to_9")
    assert error["detailMessage"].startswith("code '000000' is not valid")
    error = refused(tenant, {**body, "code": "034567"}, field="code")
    assert error["detailMessage"].startswith("code '034567' is not valid")
    assert accepted(tenant, **{**body, "code": "345678"})["code"] == 345678


def test_a_missing_field_does_not_hide_a_bad_code(tenant: Tenant) -> None:
    """Issue 15.11: the bad code is reported first, the missing remoteAllowed with it."""
    for code in (123456, "000000"):
        error = refused(tenant, {"name": "Code", "type": 13, "code": code})
        assert error["field"] == "code", error
        assert error["detailMessage"].startswith(f"code {code!r} is not valid"), error
        assert "1 more problem" in error["detailMessage"]
        found = [(p["field"], p["rule"]) for p in error["problems"]]
        assert found[1] == ("remoteAllowed", "required")
