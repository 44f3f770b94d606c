"""Drift on a lock whose keys live upstream too (Nuki's cloud): the safer state wins and the
owner is told. Narrowed at the upstream: adopted; widened: put back; deleted: adopted; a key
Keyhouse did not create: listed with origin "upstream", never deleted; a create under way is
not taken for a second key; an owner's edit racing a check is never lost.

The upstream is outside the machine, so it is stood in by ``OutsideLock``: a DeviceLink over a
dict of upstream keys (what Nuki's cloud would list), nothing more."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conftest import Tenant, tenant_with, wait_until
from keyhouse.devices.link import ActionAccepted, DeviceUnreachable, DoorEvent, Placed
from keyhouse.devices.sync import desired_payload
from keyhouse.rules.dates import utcnow
from keyhouse.rules.drift import marker_text
from keyhouse.store.models import Smartlock, SmartlockAuth

LOCK_ID = 0x4_1234ABCD  # a Smart Lock 3.0 (type 4) of the upstream account
WINDOW = {
    "allowedFromDate": "2026-12-01T00:00:00.000Z",
    "allowedUntilDate": "2027-01-31T00:00:00.000Z",
    "allowedWeekDays": 124,
    "allowedFromTime": 480,
    "allowedUntilTime": 1080,
}


class OutsideLock:
    """The upstream: its keys by upstream id, per lock. Writes replace the whole key."""

    unknown_keys = "adopt"
    timeout_seconds = 5.0

    def __init__(self) -> None:
        self.keys: dict[int, dict[str, dict[str, Any]]] = {}
        self.guard = threading.Lock()
        self.puts = 0
        self.offline = False
        self.refuse_puts = False  # writes time out (the lock's reads still answer)
        self._ids = itertools.count(1)

    def put(
        self, smartlock_id: int, key_id: str, data: dict[str, Any], ref: str | None, fence: int
    ) -> Placed:
        if self.offline or self.refuse_puts:
            raise DeviceUnreachable("the upstream is offline")
        with self.guard:
            self.puts += 1
            ref = ref or f"up-{next(self._ids)}"
            kept = {k: v for k, v in data.items() if v is not None}
            self.keys.setdefault(smartlock_id, {})[ref] = {"id": ref, **kept}
            return Placed(ref)

    def remove(self, smartlock_id: int, key_id: str, ref: str | None, fence: int) -> None:
        with self.guard:
            self.keys.get(smartlock_id, {}).pop(ref or "", None)

    def read_all(self, smartlock_id: int) -> dict[str, dict[str, Any]]:
        if self.offline:
            raise DeviceUnreachable("the upstream is offline")
        with self.guard:
            return {ref: dict(entry) for ref, entry in self.keys.get(smartlock_id, {}).items()}

    def act(
        self, smartlock_id: int, action: int, option: int, trigger: int, device_type: int
    ) -> DoorEvent | ActionAccepted:
        raise DeviceUnreachable("not needed here")

    # what the owner does at the upstream, behind Keyhouse's back
    def change(self, ref: str, **fields: Any) -> None:
        with self.guard:
            entry = self.keys[LOCK_ID][ref]
            for name, value in fields.items():
                if value is None:
                    entry.pop(name, None)
                else:
                    entry[name] = value

    def entry(self, ref: str) -> dict[str, Any]:
        with self.guard:
            return dict(self.keys[LOCK_ID][ref])


@contextmanager
def cloud(tmp_path: Path, **settings: Any) -> Iterator[tuple[Tenant, OutsideLock]]:
    """A tenant with one lock of a linked upstream account, reached through ``OutsideLock``;
    drift checks run on POST /smartlock/{id}/sync only, unless ``settings`` say otherwise."""
    with tenant_with(tmp_path, **{"drift_check_seconds": 0, **settings}) as tenant:
        outside = OutsideLock()
        tenant.runtime.links.use("nuki", outside)
        now = utcnow()
        with tenant.runtime.db.session() as session:
            session.add(
                Smartlock(
                    id=LOCK_ID,
                    account_id=tenant.account_id,
                    type=4,
                    nuki_id=f"{LOCK_ID & 0xFFFFFFFF:08X}",
                    name="Real Door",
                    timezone="Europe/Vienna",
                    keypad=True,
                    virtual=False,
                    link="nuki",
                    created_at=now,
                    updated_at=now,
                    checked_at=now,
                )
            )
        yield tenant, outside


def keys(tenant: Tenant) -> list[dict[str, Any]]:
    return tenant.keys(LOCK_ID)


def applied(tenant: Tenant) -> list[dict[str, Any]]:
    return wait_until(
        lambda: (
            (listed := keys(tenant)) and all(k["syncState"] == "applied" for k in listed) and listed
        ),
        10,
        "every key applied",
    )


def code_key(tenant: Tenant, name: str = "Cleaner", code: int = 345678, **more: Any) -> dict:
    tenant.create_key(
        LOCK_ID, name=name, type=13, code=code, remoteAllowed=False, **{**WINDOW, **more}
    )
    (key,) = [k for k in applied(tenant) if k["name"] == name]
    return key


def ref_of(tenant: Tenant, key: dict[str, Any]) -> str:
    with tenant.runtime.db.session() as session:
        row = session.get(SmartlockAuth, key["id"])
        assert row is not None and row.device_ref is not None
        return row.device_ref


def sync(tenant: Tenant) -> None:
    answer = tenant.post(f"/smartlock/{LOCK_ID}/sync")
    assert answer.status_code == 204, answer.text


def audit(tenant: Tenant, action: str) -> list[dict[str, Any]]:
    answer = tenant.get("/keyhouse/audit", params={"action": action})
    assert answer.status_code == 200, answer.text
    return answer.json()


def get_key(tenant: Tenant, key_id: str) -> dict[str, Any]:
    (key,) = [k for k in keys(tenant) if k["id"] == key_id]
    return key


def as_set(key: dict[str, Any]) -> dict[str, Any]:
    """The key without when it was last verified (every check moves that)."""
    return {name: value for name, value in key.items() if name != "verifiedDate"}


def test_a_key_disabled_at_the_upstream_is_adopted_as_disabled(tmp_path: Path) -> None:
    with cloud(tmp_path) as (tenant, outside):
        key = code_key(tenant)
        assert key["origin"] == "keyhouse" and key["enabled"] is True
        ref = ref_of(tenant, key)
        outside.change(ref, enabled=False)
        puts = outside.puts
        sync(tenant)
        now = get_key(tenant, key["id"])
        assert now["enabled"] is False and now["syncState"] == "applied", now
        assert outside.entry(ref)["enabled"] is False and outside.puts == puts  # nothing sent
        (event,) = audit(tenant, "key.adopt")
        assert event["actor"] == "system" and event["targetId"] == key["id"]
        assert (event["before"], event["after"]) == ({"enabled": True}, {"enabled": False})
        log = tenant.get(f"/smartlock/{LOCK_ID}/log").json()
        assert any("1 key(s) narrowed at the upstream adopted" in e["name"] for e in log), log
        # settled: a second check changes nothing more
        sync(tenant)
        assert as_set(get_key(tenant, key["id"])) == as_set(now)
        assert len(audit(tenant, "key.adopt")) == 1


def test_a_wiped_window_is_put_back(tmp_path: Path) -> None:
    with cloud(tmp_path) as (tenant, outside):
        key = code_key(tenant)
        ref = ref_of(tenant, key)
        outside.change(ref, **dict.fromkeys(WINDOW))  # Nuki's partial update wiped it
        sync(tenant)
        (now,) = applied(tenant)
        assert {name: now[name] for name in WINDOW} == WINDOW
        wait_until(
            lambda: {n: outside.entry(ref).get(n) for n in WINDOW} == WINDOW, 10, "the put-back"
        )
        (event,) = audit(tenant, "key.restore")
        assert event["after"] == WINDOW and event["before"] == dict.fromkeys(WINDOW)
        assert audit(tenant, "key.adopt") == []


def test_the_periodic_check_puts_a_wiped_window_back_and_adopts_a_disabled_key(
    tmp_path: Path,
) -> None:
    with cloud(tmp_path, drift_check_seconds=0.5, worker_interval_seconds=0.1) as (
        tenant,
        outside,
    ):
        wiped = code_key(tenant)
        disabled = code_key(tenant, name="Gardener", code=456789)
        outside.change(ref_of(tenant, wiped), **dict.fromkeys(WINDOW))
        outside.change(ref_of(tenant, disabled), enabled=False)
        wait_until(
            lambda: outside.entry(ref_of(tenant, wiped)).get("allowedWeekDays") == 124,
            10,
            "the wiped window put back by a periodic check",
        )
        wait_until(
            lambda: get_key(tenant, disabled["id"])["enabled"] is False,
            10,
            "the disabled key adopted by a periodic check",
        )
        assert get_key(tenant, wiped["id"])["allowedWeekDays"] == 124


def test_a_narrower_window_is_adopted_and_a_wider_field_put_back(tmp_path: Path) -> None:
    with cloud(tmp_path) as (tenant, outside):
        key = code_key(tenant)
        ref = ref_of(tenant, key)
        narrower = {
            "allowedUntilDate": "2026-12-24T00:00:00.000Z",
            "allowedWeekDays": 64,
            "allowedFromTime": 540,
            "allowedUntilTime": 720,
        }
        outside.change(ref, **narrower)
        puts = outside.puts
        sync(tenant)
        now = get_key(tenant, key["id"])
        assert {n: now[n] for n in narrower} == narrower and now["syncState"] == "applied"
        assert outside.puts == puts
        # then the upstream widens the days again and renames it: both go back
        outside.change(ref, allowedWeekDays=127, name="Someone")
        sync(tenant)
        (now,) = applied(tenant)
        assert now["allowedWeekDays"] == 64 and now["name"] == "Cleaner"
        wait_until(lambda: outside.entry(ref)["allowedWeekDays"] == 64, 10, "the put-back")
        assert outside.entry(ref)["name"] == "Cleaner"


def test_a_key_deleted_at_the_upstream_is_not_made_again(tmp_path: Path) -> None:
    with cloud(tmp_path) as (tenant, outside):
        app_user = tenant.create_user()
        tenant.create_key(
            LOCK_ID, name="Guest app", type=0, accountUserId=app_user, remoteAllowed=True
        )
        (app_key,) = applied(tenant)
        ref = ref_of(tenant, app_key)
        with outside.guard:
            del outside.keys[LOCK_ID][ref]
        puts = outside.puts
        sync(tenant)
        assert keys(tenant) == [] and outside.puts == puts
        (event,) = audit(tenant, "key.adopt")
        assert event["after"] is None and event["before"]["name"] == "Guest app"


def test_a_key_made_at_the_upstream_is_listed_and_never_deleted(tmp_path: Path) -> None:
    with cloud(tmp_path) as (tenant, outside):
        mine = code_key(tenant)
        owners = {
            "id": "owner-1",
            "type": 13,
            "name": "Owner's own",
            "code": 567891,
            "enabled": True,
            "remoteAllowed": False,
            "authId": 7,
        }
        outside.keys[LOCK_ID]["owner-1"] = owners
        for _ in range(3):
            sync(tenant)
            listed = {k["name"]: k for k in applied(tenant)}
            assert set(listed) == {"Cleaner", "Owner's own"}
            assert "owner-1" in outside.read_all(LOCK_ID)
        theirs = listed["Owner's own"]
        assert theirs["origin"] == "upstream" and listed["Cleaner"]["origin"] == "keyhouse"
        assert (theirs["code"], theirs["type"], theirs["authId"]) == (567891, 13, 7)
        assert mine["id"] != theirs["id"]
        (event,) = audit(tenant, "key.import")
        assert event["after"]["code"] == "(set)" and event["after"]["origin"] == "upstream"
        # the owner's key is a key like the others: a change in Keyhouse goes upstream
        answer = tenant.post(f"/smartlock/{LOCK_ID}/auth/{theirs['id']}", json={"name": "Own"})
        assert answer.status_code == 204, answer.text
        applied(tenant)
        assert outside.entry("owner-1")["name"] == "Own"


def test_a_create_under_way_is_not_adopted_as_a_second_key(tmp_path: Path) -> None:
    with cloud(tmp_path) as (tenant, outside):
        user = tenant.create_user()
        outside.refuse_puts = True
        answer = tenant.put(
            f"/smartlock/{LOCK_ID}/auth",
            json={"name": "Landing", "type": 0, "accountUserId": user, "remoteAllowed": True},
        )
        assert answer.status_code == 204, answer.text
        (pending,) = keys(tenant)
        assert pending["syncState"] == "pending"
        # The create was sent and stored upstream, but its answer was lost: only the marker
        # says so (the cloud link writes it before sending). An app key has no code to tell
        # it by: the marker's fingerprint is all there is.
        with tenant.runtime.db.session() as session:
            row = session.get(SmartlockAuth, pending["id"])
            assert row is not None
            sent = desired_payload(row)
            row.create_marker = marker_text(sent, utcnow())
        landed = {k: v for k, v in sent.items() if v is not None}
        with outside.guard:
            outside.keys.setdefault(LOCK_ID, {})["landed"] = {"id": "landed", **landed}
            # (a link may keep the upstream's key whole beside the payload fields)
            outside.keys[LOCK_ID]["other"] = {
                **landed,
                "name": "Other",
                "id": "other",
                "upstream": {"id": "other", "authId": 9},
            }
        for _ in range(3):
            sync(tenant)
            names = sorted(k["name"] for k in keys(tenant))
            assert names == ["Landing", "Other"], names  # the other key is listed, ours once
        assert audit(tenant, "key.import")[0]["after"]["name"] == "Other"
        (other,) = [k for k in keys(tenant) if k["name"] == "Other"]
        assert (other["origin"], other["authId"]) == ("upstream", 9)


def test_a_key_changed_in_keyhouse_is_not_judged_until_the_upstream_has_it(
    tmp_path: Path,
) -> None:
    """The owner's edit is pending (the upstream did not take it yet) when the check finds
    the upstream's older copy changed: the edit stays, and goes upstream afterwards."""
    with cloud(tmp_path) as (tenant, outside):
        key = code_key(tenant)
        ref = ref_of(tenant, key)
        outside.refuse_puts = True
        answer = tenant.post(f"/smartlock/{LOCK_ID}/auth/{key['id']}", json={"name": "Renamed"})
        assert answer.status_code == 204, answer.text
        outside.change(ref, enabled=False, allowedWeekDays=None)
        sync(tenant)
        now = get_key(tenant, key["id"])
        assert (now["name"], now["syncState"], now["enabled"]) == ("Renamed", "pending", True)
        assert now["allowedWeekDays"] == WINDOW["allowedWeekDays"]
        assert audit(tenant, "key.adopt") == [] and audit(tenant, "key.restore") == []
        outside.refuse_puts = False
        tenant.runtime.device_worker.submit([LOCK_ID])
        (now,) = applied(tenant)
        assert outside.entry(ref)["name"] == "Renamed"
        assert outside.entry(ref)["allowedWeekDays"] == WINDOW["allowedWeekDays"]


def test_an_owner_edit_racing_drift_checks_is_never_lost(tmp_path: Path) -> None:
    """Many rounds: the owner renames the key in Keyhouse while the upstream disables or
    re-enables it and a drift check runs, truly at once. After each round Keyhouse shows the
    owner's name, and once settled the upstream holds exactly what Keyhouse shows."""
    with cloud(tmp_path) as (tenant, outside):
        key = code_key(tenant)
        ref = ref_of(tenant, key)
        failures: list[str] = []

        def owner(start: threading.Barrier, name: str) -> None:
            start.wait()
            answer = tenant.post(f"/smartlock/{LOCK_ID}/auth/{key['id']}", json={"name": name})
            if answer.status_code != 204:
                failures.append(answer.text)

        def behind_the_back(start: threading.Barrier, enabled: bool) -> None:
            with outside.guard:
                outside.keys[LOCK_ID][ref]["enabled"] = enabled
            start.wait()
            answer = tenant.post(f"/smartlock/{LOCK_ID}/sync")
            if answer.status_code not in (204, 423):
                failures.append(answer.text)

        for n in range(20):
            start = threading.Barrier(2)
            name = f"Guest {n}"
            threads = [
                threading.Thread(target=owner, args=(start, name)),
                threading.Thread(target=behind_the_back, args=(start, n % 2 == 1)),
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert not failures, failures[:3]
            (now,) = applied(tenant)
            assert now["name"] == name, (n, now)
            sync(tenant)  # the upstream quiet now: this check settles what is left
            (now,) = applied(tenant)
            assert now["name"] == name, (n, now)
            upstream = outside.entry(ref)
            for field in ("name", "enabled", "code", *WINDOW):
                assert upstream.get(field) == now.get(field), (n, field, upstream, now)


def test_the_simulators_unknown_keys_are_still_removed(tenant: Tenant) -> None:
    """A virtual lock keeps its policy: it is the server's alone (see test_drift_repair)."""
    assert tenant.runtime.links.of(tenant.keypad_lock).unknown_keys == "remove"


def test_origin_is_a_keyhouse_field_left_out_in_nuki_mode() -> None:
    from keyhouse.api.nuki_mode import keyhouse_fields

    assert "origin" in keyhouse_fields()
