"""The listings build keys from plain rows, the single key from its model: both must show a key
the same way, in every sync state and with every optional field, on SQLite and PostgreSQL."""

from __future__ import annotations

from conftest import Tenant
from keyhouse.store.models import SimulatedLock


def _set_online(tenant: Tenant, lock_id: int, online: bool) -> None:
    with tenant.runtime.db.session() as session:
        device = session.get(SimulatedLock, lock_id)
        assert device is not None
        device.online = online


def test_a_listed_key_is_shown_as_its_own_answer_shows_it(store_tenant: Tenant) -> None:
    tenant = store_tenant
    tenant.runtime.settings.confirm_wait_seconds = 0.2
    user = tenant.create_user("guest@example.com", "Guest")
    windowed = {
        "name": "Weekdays",
        "type": 13,
        "code": 345678,
        "remoteAllowed": False,
        "allowedFromDate": "2026-12-01T08:00:00.123Z",
        "allowedUntilDate": "2026-12-31T18:00:00.000Z",
        "allowedWeekDays": 124,
        "allowedFromTime": 480,
        "allowedUntilTime": 1080,
    }
    tenant.create_key(tenant.keypad_lock, **windowed)  # applied
    tenant.create_key(
        tenant.plain_lock, name="App", type=0, accountUserId=user, remoteAllowed=False
    )  # applied, with a warning
    _set_online(tenant, tenant.keypad_lock, False)
    tenant.create_key(tenant.keypad_lock, name="Later", type=13, code=456789, remoteAllowed=False)
    doomed = tenant.create_key(
        tenant.keypad_lock, name="Doomed", type=13, code=567891, remoteAllowed=False
    )
    assert tenant.delete(f"/smartlock/{tenant.keypad_lock}/auth/{doomed['id']}").status_code == 204

    listed = tenant.keys(tenant.keypad_lock) + tenant.keys(tenant.plain_lock)
    across = {key["id"]: key for key in tenant.keys(None)}
    states = {key["syncState"] for key in listed}
    assert states == {"applied", "pending", "deleting"}, states
    assert any("warning" in key for key in listed)
    assert any("operationId" in key for key in listed)
    assert any("verifiedDate" in key for key in listed)
    for key in listed:
        single = tenant.get(f"/smartlock/{key['smartlockId']}/auth/{key['id']}")
        assert single.status_code == 200, single.text
        assert key == single.json() == across[key["id"]]
    first = next(key for key in listed if key["name"] == "Weekdays")
    assert first["allowedFromDate"] == "2026-12-01T08:00:00.123Z"
    assert first["allowedWeekDays"] == 124


def test_a_listed_lock_is_shown_as_its_own_answer_shows_it(store_tenant: Tenant) -> None:
    tenant = store_tenant
    _set_online(tenant, tenant.plain_lock, False)
    listed = tenant.get("/smartlock")
    assert listed.status_code == 200, listed.text
    locks = listed.json()
    assert {lock["smartlockId"] for lock in locks} == {tenant.keypad_lock, tenant.plain_lock}
    assert {lock["serverState"] for lock in locks} == {0, 4}  # online and offline both shown
    for lock in locks:
        single = tenant.get(f"/smartlock/{lock['smartlockId']}")
        assert single.status_code == 200, single.text
        assert lock == single.json()
