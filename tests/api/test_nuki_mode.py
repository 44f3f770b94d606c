"""The stand-in's Nuki mode (KEYHOUSE_NUKI_MODE=1): a Keyhouse server that answers as
api.nuki.io does where a client of Nuki's cloud must cope with it. Each behaviour is checked
in Nuki mode, and (where it differs) that Keyhouse's normal mode is unchanged."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Tenant, tenant_with, wait_until
from keyhouse.api.nuki_mode import keyhouse_fields
from official_schemas import assert_official, official_spec

WINDOW = {
    "allowedFromDate": "2026-12-01T00:00:00.000Z",
    "allowedUntilDate": "2027-01-31T23:00:00.000Z",
    "allowedWeekDays": 124,
    "allowedFromTime": 480,
    "allowedUntilTime": 1080,
}
NO_KEY = "0123456789abcdef01234567"


@pytest.fixture
def nuki(tmp_path: Path, store_url: str | None) -> Iterator[Tenant]:
    """A stand-in in Nuki mode, on SQLite and on PostgreSQL."""
    with tenant_with(
        tmp_path,
        nuki_mode=True,
        nuki_keys_appear_seconds=0,
        confirm_wait_seconds=0,
        database_url=store_url,
    ) as tenant:
        yield tenant


@pytest.fixture
def normal(tmp_path: Path) -> Iterator[Tenant]:
    with tenant_with(tmp_path / "normal", confirm_wait_seconds=0) as tenant:
        yield tenant


def keypad_code(tenant: Tenant, code: int = 345678, **extra: Any) -> None:
    """Create a keypad code; a 423 (Nuki mode: the lock is busy) is waited out, as Nuki's
    clients must (tested on its own below)."""
    body = {"name": f"Code {code}", "type": 13, "code": code, "remoteAllowed": False, **extra}
    answer = wait_until(
        lambda: (
            found
            if (found := tenant.put(f"/smartlock/{tenant.keypad_lock}/auth", json=body)).status_code
            != 423
            else None
        ),
        what="the lock to take a write",
    )
    assert answer.status_code == 204, answer.text


def settle(tenant: Tenant) -> None:
    """The stand-in's own lock has applied every change (its emulator says so)."""

    def done() -> bool:
        state = tenant.get(f"/emulator/smartlock/{tenant.keypad_lock}").json()
        return state["pendingOperations"] == 0

    wait_until(done, what="the stand-in's lock to apply its keys")
    # ... and its reconciler has let the lock go (Nuki mode: 423 until then).
    probe = f"/smartlock/{tenant.keypad_lock}/auth/{NO_KEY}"
    wait_until(lambda: tenant.delete(probe).status_code == 404, what="the lock to be free")


# --- the official schema only -----------------------------------------------------------------


def _schema(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = official_spec()
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def outside_official(value: Any, schema_name: str) -> list[str]:
    """Every field of ``value`` (nested objects too) the official schema does not declare."""
    found: list[str] = []

    def walk(item: Any, schema: dict[str, Any], where: str) -> None:
        schema = _schema(schema)
        if isinstance(item, list):
            for index, element in enumerate(item):
                walk(element, schema.get("items", {}), f"{where}[{index}]")
        elif isinstance(item, dict) and "properties" in schema:
            for key, sub in item.items():
                if key not in schema["properties"]:
                    found.append(f"{where}.{key}")
                else:
                    walk(sub, schema["properties"][key], f"{where}.{key}")

    walk(value, {"$ref": f"#/components/schemas/{schema_name}"}, schema_name)
    return found


def every_answer(tenant: Tenant) -> list[tuple[str, Any]]:
    lock = tenant.keypad_lock
    (key,) = tenant.keys(lock)
    user = tenant.create_user()
    return [
        ("Smartlock", tenant.get("/smartlock").json()),
        ("Smartlock", tenant.get(f"/smartlock/{lock}").json()),
        ("SmartlockAuth", tenant.get(f"/smartlock/{lock}/auth").json()),
        ("SmartlockAuth", tenant.get("/smartlock/auth").json()),
        ("SmartlockAuth", tenant.get(f"/smartlock/{lock}/auth/{key['id']}").json()),
        ("SmartlockLog", tenant.get(f"/smartlock/{lock}/log").json()),
        ("AccountUser", tenant.get("/account/user").json()),
        ("AccountUser", tenant.get(f"/account/user/{user}").json()),
    ]


def test_answers_hold_no_field_outside_the_official_schema(nuki: Tenant) -> None:
    keypad_code(nuki)
    settle(nuki)
    assert nuki.post(f"/smartlock/{nuki.keypad_lock}/action/unlock").status_code == 204
    for name, body in every_answer(nuki):
        assert body, name
        assert outside_official(body, name) == [], name
        for item in body if isinstance(body, list) else [body]:
            assert_official(name, item)


def test_normal_mode_keeps_keyhouse_fields(normal: Tenant) -> None:
    keypad_code(normal)
    extra = {
        field.split(".")[-1]
        for _n, body in every_answer(normal)
        for field in outside_official(body, _n)
    }
    assert {"syncState", "nukiId", "timezone"} <= extra


def test_keyhouse_fields_come_from_our_shapes_and_none_is_official() -> None:
    ours = keyhouse_fields()
    assert {"syncState", "verifiedDate", "warning", "nukiId", "checkedDate", "timezone"} <= ours
    assert {"smartActionsEnabled"} <= ours  # the create body's, not in Nuki's answers
    # No official answer the stand-in serves has a field of that name, at any depth.
    official: set[str] = set()
    todo = ["Smartlock", "SmartlockAuth", "SmartlockLog", "AccountUser"]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        schema = official_spec()["components"]["schemas"][name]
        official |= set(schema.get("properties", {}))
        text = repr(schema)
        todo += [ref.split("'")[0] for ref in text.split("#/components/schemas/")[1:]]
    assert len(seen) > 4
    assert not ours & official, "a field the stand-in drops is an official one"


def test_error_answers_carry_only_nukis_fields(nuki: Tenant, normal: Tenant) -> None:
    path = f"/smartlock/{nuki.keypad_lock}/auth/{NO_KEY}"
    answer = nuki.get(path)
    assert answer.status_code == 404
    assert set(answer.json()) == {"detailMessage", "stackTrace", "suppressedExceptions"}
    theirs = normal.get(f"/smartlock/{normal.keypad_lock}/auth/{NO_KEY}")
    assert {"error", "status"} <= set(theirs.json())


def test_no_warning_header(nuki: Tenant, normal: Tenant) -> None:
    body = '{ \\\n"email": "seed@example.com", \\\n"name": "Seed" \\\n}'
    for tenant, warned in ((nuki, False), (normal, True)):
        answer = tenant.put(
            "/account/user", content=body, headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 200, answer.text
        assert ("warning" in answer.headers) is warned


# --- keys that appear late, or never ---------------------------------------------------------


def test_a_new_key_appears_only_after_the_delay(nuki: Tenant) -> None:
    switched = nuki.post("/emulator/nuki", json={"keysAppearAfterSeconds": 1.5})
    assert switched.json()["keysAppearAfterSeconds"] == 1.5
    started = time.monotonic()
    keypad_code(nuki)
    assert nuki.keys(nuki.keypad_lock) == []
    assert nuki.keys() == []
    (key,) = wait_until(lambda: nuki.keys(nuki.keypad_lock), what="the key to appear")
    assert time.monotonic() - started >= 1.4
    assert nuki.get(f"/smartlock/{nuki.keypad_lock}/auth/{key['id']}").status_code == 200


def test_the_delay_is_the_servers_setting_by_default(tmp_path: Path) -> None:
    with tenant_with(tmp_path, nuki_mode=True, nuki_keys_appear_seconds=30) as tenant:
        assert tenant.get("/emulator/nuki").json()["keysAppearAfterSeconds"] == 30
        keypad_code(tenant)
        time.sleep(0.5)
        assert tenant.keys(tenant.keypad_lock) == []
        with tenant.runtime.db.read() as session:
            from keyhouse.store.models import SmartlockAuth

            (row,) = session.query(SmartlockAuth).all()
        assert tenant.get(f"/smartlock/{tenant.keypad_lock}/auth/{row.id}").status_code == 404


def test_hidden_keys_never_appear_until_switched_off(nuki: Tenant) -> None:
    keypad_code(nuki, 345678)
    assert len(nuki.keys(nuki.keypad_lock)) == 1
    assert nuki.post("/emulator/nuki", json={"hideNewKeys": True}).json()["hideNewKeys"]
    keypad_code(nuki, 456789)
    settle(nuki)
    time.sleep(0.3)
    assert [k["code"] for k in nuki.keys(nuki.keypad_lock)] == [345678]
    assert nuki.post("/emulator/nuki", json={"hideNewKeys": False}).status_code == 200
    assert sorted(k["code"] for k in nuki.keys(nuki.keypad_lock)) == [345678, 456789]


# --- 423 while an operation runs --------------------------------------------------------------


def test_writes_to_a_lock_answer_423_while_an_operation_runs(nuki: Tenant) -> None:
    lock = nuki.keypad_lock
    slow = nuki.post(f"/emulator/smartlock/{lock}", json={"latencyMs": 3000})
    assert slow.status_code == 200, slow.text
    keypad_code(nuki, 345678)
    probe = f"/smartlock/{lock}/auth/{NO_KEY}"
    wait_until(lambda: nuki.delete(probe).status_code == 423, what="423 while it runs")
    refused = nuki.put(
        f"/smartlock/{lock}/auth",
        json={"name": "Second", "type": 13, "code": 456789, "remoteAllowed": False},
    )
    assert refused.status_code == 423
    assert set(refused.json()) == {"detailMessage", "stackTrace", "suppressedExceptions"}
    # Reads go on meanwhile.
    assert nuki.get(f"/smartlock/{lock}/auth").status_code == 200
    settle(nuki)
    assert nuki.delete(probe).status_code == 404
    keypad_code(nuki, 456789)


def test_normal_mode_takes_writes_while_an_operation_runs(normal: Tenant) -> None:
    lock = normal.keypad_lock
    normal.post(f"/emulator/smartlock/{lock}", json={"latencyMs": 2000})
    keypad_code(normal, 345678)
    time.sleep(0.5)
    keypad_code(normal, 456789)


# --- an HTML 429 on demand ----------------------------------------------------------------------


def test_too_many_requests_answers_html_429_then_recovers(nuki: Tenant) -> None:
    assert nuki.post("/emulator/nuki", json={"tooManyRequests": 2}).status_code == 200
    for _ in range(2):
        answer = nuki.get("/smartlock")
        assert answer.status_code == 429
        assert answer.headers["content-type"].startswith("text/html")
        assert answer.text.lstrip().startswith("<html>")
        assert "retry-after" not in answer.headers
    assert nuki.get("/smartlock").status_code == 200
    assert nuki.get("/emulator/nuki").json()["tooManyRequests"] == 0


def test_the_emulator_itself_is_never_throttled(nuki: Tenant) -> None:
    nuki.post("/emulator/nuki", json={"tooManyRequests": 1})
    assert nuki.get(f"/emulator/smartlock/{nuki.keypad_lock}").status_code == 200
    assert nuki.get("/smartlock").status_code == 429


# --- the partial update that wipes the time window ----------------------------------------


def test_a_partial_update_wipes_the_time_window(nuki: Tenant, normal: Tenant) -> None:
    kept = {}
    for tenant in (nuki, normal):
        keypad_code(tenant, 345678, **WINDOW)
        settle(tenant)
        (key,) = tenant.keys(tenant.keypad_lock)
        assert {k: key.get(k) for k in WINDOW} == WINDOW
        renamed = tenant.post(
            f"/smartlock/{tenant.keypad_lock}/auth/{key['id']}", json={"name": "Renamed"}
        )
        assert renamed.status_code == 204, renamed.text
        (after,) = tenant.keys(tenant.keypad_lock)
        assert after["name"] == "Renamed"
        kept[tenant is nuki] = {k: after.get(k) for k in WINDOW if after.get(k)}
    assert kept[True] == {}  # Nuki mode: the window is gone
    assert kept[False] == WINDOW  # Keyhouse keeps it


def test_a_full_update_keeps_the_window_in_nuki_mode(nuki: Tenant) -> None:
    keypad_code(nuki, 345678)
    settle(nuki)
    (key,) = nuki.keys(nuki.keypad_lock)
    answer = nuki.post(
        f"/smartlock/{nuki.keypad_lock}/auth/{key['id']}",
        json={"name": "Whole", "enabled": True, "remoteAllowed": False, "code": 345678, **WINDOW},
    )
    assert answer.status_code == 204, answer.text
    (after,) = nuki.keys(nuki.keypad_lock)
    assert {k: after.get(k) for k in WINDOW} == WINDOW


# --- the switches ---------------------------------------------------------------------------


def test_the_switches_exist_only_in_nuki_mode(normal: Tenant) -> None:
    answer = normal.post("/emulator/nuki", json={"tooManyRequests": 1})
    assert answer.status_code == 404
    assert "KEYHOUSE_NUKI_MODE=1" in answer.json()["detailMessage"]
    assert normal.get("/smartlock").status_code == 200


def test_bad_switches_are_400_on_their_field(nuki: Tenant) -> None:
    answer = nuki.post("/emulator/nuki", json={"tooManyRequests": -1})
    assert answer.status_code == 400
    assert answer.json()["field"] == "tooManyRequests"


def test_the_switches_belong_to_one_account(nuki: Tenant) -> None:
    from conftest import make_tenant

    other = make_tenant(nuki.client, nuki.runtime, "other@example.org")
    nuki.post("/emulator/nuki", json={"tooManyRequests": 5})
    assert other.get("/smartlock").status_code == 200
    assert nuki.get("/smartlock").status_code == 429
