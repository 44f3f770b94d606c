"""The activity log: GET /smartlock/{id}/log and GET /smartlock/log (scope smartlock.log),
newest first, paged with the id of the oldest entry seen, filtered, per account, and in the
official SmartlockLog shape."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conftest import Tenant
from official_schemas import official_errors

MONDAY = "2026-12-07T09:00:00Z"  # 10:00 in Vienna
TUESDAY = "2026-12-08T09:00:00Z"
NEXT_MONDAY = "2026-12-14T09:00:00Z"
UNKNOWN_LOCK = 4_294_967_295


def assert_official_log(entries: list[dict[str, Any]]) -> None:
    assert isinstance(entries, list)
    for index, entry in enumerate(entries):
        problems = official_errors("SmartlockLog", entry)
        assert not problems, f"log entry [{index}] {entry} breaks the official schema:\n" + (
            "\n".join(problems)
        )


def log_of(tenant: Tenant, smartlock_id: int | None = None, **params: Any) -> list[dict]:
    path = f"/smartlock/{smartlock_id}/log" if smartlock_id else "/smartlock/log"
    answer = tenant.get(path, params=params)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert_official_log(body)
    return body


def press(tenant: Tenant, smartlock_id: int, times: int = 1) -> list[str]:
    """Press the lock's button; the log ids, oldest first."""
    ids = []
    for _ in range(times):
        answer = tenant.post(f"/emulator/smartlock/{smartlock_id}/button")
        assert answer.status_code == 200, answer.text
        ids.append(answer.json()["logId"])
    return ids


def keypad(tenant: Tenant, smartlock_id: int, code: int, at: str) -> dict[str, Any]:
    answer = tenant.post(
        f"/emulator/smartlock/{smartlock_id}/keypad", json={"code": code, "at": at}
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def refused(answer: httpx.Response, status: int, *, error: str, field: str | None = None) -> dict:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["error"] == error, body
    if field is not None:
        assert body["field"] == field, body
    return body


@pytest.fixture
def many(tenant: Tenant) -> list[str]:
    """55 button presses on the plain lock: their log ids, oldest first."""
    return press(tenant, tenant.plain_lock, 55)


@pytest.fixture
def user(tenant: Tenant) -> int:
    return tenant.create_user()


# --- order, limit and paging ------------------------------------------------------------------


def test_newest_first(tenant: Tenant) -> None:
    ids = press(tenant, tenant.plain_lock, 3)
    entries = log_of(tenant, tenant.plain_lock)
    assert [e["id"] for e in entries] == ids[::-1]
    assert [e["action"] for e in entries] == [1, 2, 1]  # unlock, lock, unlock: newest first
    for entry in entries:
        assert entry["trigger"] == 2
        assert entry["state"] == 0
        assert entry["smartlockId"] == tenant.plain_lock


def test_empty_log_is_an_empty_list(tenant: Tenant) -> None:
    assert log_of(tenant, tenant.plain_lock) == []
    assert log_of(tenant) == []


def test_default_limit_is_20(tenant: Tenant, many: list[str]) -> None:
    entries = log_of(tenant, tenant.plain_lock)
    assert [e["id"] for e in entries] == many[::-1][:20]
    assert len(log_of(tenant)) == 20


@pytest.mark.parametrize("limit", [50, 51, 100, 10_000])
def test_limit_is_capped_at_50(tenant: Tenant, many: list[str], limit: int) -> None:
    entries = log_of(tenant, tenant.plain_lock, limit=limit)
    assert [e["id"] for e in entries] == many[::-1][:50]
    assert len(log_of(tenant, limit=limit)) == 50


def test_a_smaller_limit_is_kept(tenant: Tenant, many: list[str]) -> None:
    assert [e["id"] for e in log_of(tenant, tenant.plain_lock, limit=5)] == many[::-1][:5]


@pytest.mark.parametrize("limit", [0, -1])
def test_limit_below_1_is_400(tenant: Tenant, limit: int) -> None:
    answer = tenant.get(f"/smartlock/{tenant.plain_lock}/log", params={"limit": limit})
    refused(answer, 400, error="validation_failed", field="limit")


def test_id_cursor_returns_strictly_older_entries(tenant: Tenant, many: list[str]) -> None:
    newest_first = many[::-1]
    page = log_of(tenant, tenant.plain_lock)
    older = log_of(tenant, tenant.plain_lock, id=page[-1]["id"])
    assert [e["id"] for e in older] == newest_first[20:40]
    last = log_of(tenant, tenant.plain_lock, id=older[-1]["id"], limit=50)
    assert [e["id"] for e in last] == newest_first[40:]
    assert log_of(tenant, tenant.plain_lock, id=last[-1]["id"]) == []
    # the cursor works on the account-wide log too, and is exclusive
    assert [e["id"] for e in log_of(tenant, id=newest_first[0], limit=3)] == newest_first[1:4]


def test_an_unknown_cursor_is_400(tenant: Tenant, other_tenant: Tenant) -> None:
    (foreign,) = press(other_tenant, other_tenant.plain_lock)
    for cursor in ("000000000000000000000000", foreign):
        answer = tenant.get(f"/smartlock/{tenant.plain_lock}/log", params={"id": cursor})
        refused(answer, 400, error="validation_failed", field="id")


# --- filters ----------------------------------------------------------------------------------


def test_filter_by_auth_id(tenant: Tenant) -> None:
    lock = tenant.keypad_lock
    first = tenant.create_key(lock, name="First", type=13, code=345678, remoteAllowed=False)
    second = tenant.create_key(lock, name="Second", type=13, code=456789, remoteAllowed=False)
    keypad(tenant, lock, 345678, MONDAY)
    keypad(tenant, lock, 456789, MONDAY)
    keypad(tenant, lock, 345678, TUESDAY)
    keypad(tenant, lock, 999999, MONDAY)  # unknown: no key
    press(tenant, lock)

    mine = log_of(tenant, lock, authId=first["id"])
    assert len(mine) == 2
    assert {e["authId"] for e in mine} == {first["id"]}
    assert {e["name"] for e in mine} == {"First"}
    assert [e["authId"] for e in log_of(tenant, lock, authId=second["id"])] == [second["id"]]
    assert log_of(tenant, lock, authId="ffffffffffffffffffffffff") == []
    assert len(log_of(tenant, lock)) == 5


def test_filter_by_account_user(tenant: Tenant, user: int) -> None:
    lock = tenant.keypad_lock
    other_user = tenant.create_user("second@example.com", "Second")
    key = tenant.create_key(lock, name="Guest", accountUserId=user, remoteAllowed=False)
    other = tenant.create_key(lock, name="Other", accountUserId=other_user, remoteAllowed=False)
    body = {"authId": key["authId"], "action": 1, "remote": False}
    assert tenant.post(f"/emulator/smartlock/{lock}/app", json=body).status_code == 200
    body = {"authId": key["authId"], "action": 2, "remote": True}  # refused: still the user's
    assert tenant.post(f"/emulator/smartlock/{lock}/app", json=body).status_code == 200
    body = {"authId": other["authId"], "action": 1, "remote": False}
    assert tenant.post(f"/emulator/smartlock/{lock}/app", json=body).status_code == 200
    press(tenant, lock)

    entries = log_of(tenant, lock, accountUserId=user)
    assert [(e["action"], e["state"]) for e in entries] == [(2, 9), (1, 0)]
    assert {e["accountUserId"] for e in entries} == {user}
    assert {e["authId"] for e in entries} == {key["id"]}
    assert [e["accountUserId"] for e in log_of(tenant, accountUserId=other_user)] == [other_user]
    assert log_of(tenant, lock, accountUserId=user + 1000) == []


def test_filter_by_action(tenant: Tenant) -> None:
    lock = tenant.plain_lock
    ids = press(tenant, lock, 5)  # unlock, lock, unlock, lock, unlock
    locks = log_of(tenant, lock, action=2)
    assert [e["id"] for e in locks] == [ids[3], ids[1]]
    assert {e["action"] for e in locks} == {2}
    assert [e["id"] for e in log_of(tenant, lock, action=1)] == [ids[4], ids[2], ids[0]]
    assert log_of(tenant, lock, action=3) == []
    assert [e["id"] for e in log_of(tenant, action=2)] == [ids[3], ids[1]]


def test_filter_by_dates(tenant: Tenant) -> None:
    lock = tenant.keypad_lock
    tenant.create_key(lock, name="Always", type=13, code=345678, remoteAllowed=False)
    monday = keypad(tenant, lock, 345678, MONDAY)["logId"]
    tuesday = keypad(tenant, lock, 345678, TUESDAY)["logId"]
    next_monday = keypad(tenant, lock, 345678, NEXT_MONDAY)["logId"]

    def ids(**params: Any) -> list[str]:
        return [e["id"] for e in log_of(tenant, lock, **params)]

    assert ids(fromDate="2026-12-08T00:00:00Z") == [next_monday, tuesday]
    assert ids(toDate="2026-12-08T00:00:00Z") == [monday]
    assert ids(fromDate="2026-12-08T00:00:00.000Z", toDate="2026-12-09T00:00:00.000Z") == [tuesday]
    # the bounds are inclusive
    assert ids(fromDate=TUESDAY, toDate=TUESDAY) == [tuesday]
    # an offset is an instant like any other: 10:00+01:00 is 09:00Z
    assert ids(fromDate="2026-12-08T10:00:00+01:00", toDate="2026-12-08T10:00:00+01:00") == [
        tuesday
    ]
    assert ids(fromDate="2027-01-01T00:00:00Z") == []
    assert [e["id"] for e in log_of(tenant, fromDate="2026-12-14T00:00:00Z")] == [next_monday]
    dates = {e["id"]: e["date"] for e in log_of(tenant, lock)}
    assert dates[tuesday] == "2026-12-08T09:00:00.000Z"


@pytest.mark.parametrize("field", ["fromDate", "toDate"])
@pytest.mark.parametrize("value", ["yesterday", "2026-13-01T00:00:00Z", "2026-12-01"])
def test_a_bad_date_is_400_on_its_field(tenant: Tenant, field: str, value: str) -> None:
    for path in (f"/smartlock/{tenant.plain_lock}/log", "/smartlock/log"):
        answer = tenant.get(path, params={field: value})
        body = refused(answer, 400, error="validation_failed", field=field)
        assert field in body["detailMessage"]


# --- accounts and scopes ----------------------------------------------------------------------


def test_account_log_spans_all_locks_and_only_the_accounts(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    (plain,) = press(tenant, tenant.plain_lock)
    (front,) = press(tenant, tenant.keypad_lock)
    foreign = press(other_tenant, other_tenant.plain_lock, 2)
    assert tenant.post(f"/smartlock/{tenant.plain_lock}/action/lock").status_code == 204

    entries = log_of(tenant)
    assert len(entries) == 3
    assert entries[0]["smartlockId"] == tenant.plain_lock
    assert entries[0]["trigger"] == 4
    assert [e["id"] for e in entries[1:]] == [front, plain]
    assert {e["smartlockId"] for e in entries} == {tenant.plain_lock, tenant.keypad_lock}
    assert not {e["id"] for e in entries} & set(foreign)

    theirs = log_of(other_tenant)
    assert [e["id"] for e in theirs] == foreign[::-1]
    assert {e["smartlockId"] for e in theirs} == {other_tenant.plain_lock}
    assert log_of(tenant, action=1, limit=50) == [e for e in entries if e["action"] == 1]


def test_another_accounts_lock_log_is_not_shown(tenant: Tenant, other_tenant: Tenant) -> None:
    press(other_tenant, other_tenant.plain_lock)
    answer = tenant.get(f"/smartlock/{other_tenant.plain_lock}/log")
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"] == "not_found"
    assert "stranger" not in answer.text
    answer = tenant.get(f"/smartlock/{UNKNOWN_LOCK}/log")
    assert answer.status_code == 404, answer.text


def test_log_needs_scope_smartlock_log(tenant: Tenant) -> None:
    press(tenant, tenant.plain_lock)
    token = tenant.token_with("smartlock", "smartlock.action", "emulator")
    headers = {"Authorization": f"Bearer {token}"}
    for path in (f"/smartlock/{tenant.plain_lock}/log", "/smartlock/log"):
        answer = tenant.client.get(path, headers=headers)
        body = refused(answer, 403, error="missing_scope")
        assert body["rule"] == "scope"
        assert "smartlock.log" in body["detailMessage"]
    good = tenant.token_with("smartlock.log")
    answer = tenant.client.get("/smartlock/log", headers={"Authorization": f"Bearer {good}"})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()) == 1


def test_log_needs_a_token(tenant: Tenant) -> None:
    answer = tenant.client.get("/smartlock/log")
    refused(answer, 401, error="unauthorized")


# --- the official shape -----------------------------------------------------------------------


def test_every_kind_of_entry_matches_the_official_schema(tenant: Tenant, user: int) -> None:
    lock = tenant.keypad_lock
    code = tenant.create_key(
        lock,
        name="Cleaner",
        type=13,
        code=345678,
        remoteAllowed=False,
        allowedWeekDays=64,
        allowedFromTime=480,
        allowedUntilTime=1080,
    )
    app = tenant.create_key(lock, name="Guest", accountUserId=user, remoteAllowed=False)
    keypad(tenant, lock, 345678, MONDAY)  # success, keypad
    keypad(tenant, lock, 345678, TUESDAY)  # rejected, keypad
    keypad(tenant, lock, 111111, MONDAY)  # unknown code
    for remote in (False, True):
        body = {"authId": app["authId"], "action": 2, "remote": remote}
        assert tenant.post(f"/emulator/smartlock/{lock}/app", json=body).status_code == 200
    body = {"authId": 99, "action": 1}
    assert tenant.post(f"/emulator/smartlock/{lock}/app", json=body).status_code == 200
    press(tenant, lock)
    assert tenant.post(f"/smartlock/{lock}/action", json={"action": 2}).status_code == 204
    tenant.post(f"/emulator/smartlock/{lock}", json={"fault": "busy"})
    assert tenant.post(f"/smartlock/{lock}/action", json={"action": 1}).status_code == 423
    tenant.post(f"/emulator/smartlock/{lock}", json={"fault": "motorBlocked"})
    assert tenant.post(f"/smartlock/{lock}/action", json={"action": 1}).status_code == 409

    entries = log_of(tenant, lock, limit=50)  # log_of validates every entry
    assert len(entries) == 10
    assert {e["state"] for e in entries} == {0, 1, 4, 9}
    assert {e["trigger"] for e in entries} == {2, 4, 5, 255}
    for entry in entries:
        assert len(entry["id"]) == 24
        int(entry["id"], 16)
        assert entry["deviceType"] == 0
        assert entry["date"].endswith("Z")
    with_keys = [e for e in entries if "authId" in e]
    assert {e["authId"] for e in with_keys} == {code["id"], app["id"]}
    assert all(len(e["authId"]) == 24 for e in with_keys)
    assert_official_log(log_of(tenant, limit=50))
