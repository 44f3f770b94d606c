"""Drift repair: a key removed or changed on the lock behind the server's back is set right at
once on POST /smartlock/{id}/sync and within one drift interval otherwise; verifiedDate moves;
the log shows the repair. And the limits of request threads on a slow lock."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import update

from conftest import Tenant, tenant_with, wait_until
from keyhouse.devices.sync import Reconciler
from keyhouse.rules.dates import utcnow
from keyhouse.services import admin
from keyhouse.store.models import Smartlock


def keypad_code(tenant: Tenant, code: int = 345678, name: str = "Cleaner") -> dict[str, Any]:
    key = tenant.create_key(tenant.keypad_lock, name=name, type=13, code=code, remoteAllowed=False)
    assert key["syncState"] == "applied", key
    return key


def all_applied(tenant: Tenant) -> bool:
    listed = tenant.keys()
    return all(k["syncState"] == "applied" for k in listed)


def on_lock(tenant: Tenant) -> dict[str, dict[str, Any]]:
    return tenant.runtime.link.read_all(tenant.keypad_lock)


def tamper(tenant: Tenant, **body: Any) -> httpx.Response:
    return tenant.post(f"/emulator/smartlock/{tenant.keypad_lock}/tamper", json=body)


def get_key(tenant: Tenant, key: dict[str, Any]) -> dict[str, Any]:
    return tenant.get(f"/smartlock/{tenant.keypad_lock}/auth/{key['id']}").json()


def test_sync_puts_back_a_removed_key_and_undoes_a_changed_one(tmp_path: Path) -> None:
    with tenant_with(tmp_path, drift_check_seconds=0) as tenant:
        removed = keypad_code(tenant, 345678, "Cleaner")
        changed = keypad_code(tenant, 456789, "Guest")
        first_verified = get_key(tenant, removed)["verifiedDate"]
        assert tamper(tenant, authId=removed["authId"], remove=True).status_code == 200
        assert (
            tamper(tenant, authId=changed["authId"], code=987654, name="Burglar").status_code == 200
        )
        # the lock opens for the code the server never gave, and not for the removed one
        assert tenant.post(
            f"/emulator/smartlock/{tenant.keypad_lock}/keypad", json={"code": 987654}
        ).json()["opened"]

        answer = tenant.post(f"/smartlock/{tenant.keypad_lock}/sync")
        assert answer.status_code == 204, answer.text
        wait_until(lambda: all_applied(tenant), 5, "the repair")
        held = {entry["keyId"]: entry for entry in on_lock(tenant).values()}
        assert held[removed["id"]]["code"] == 345678
        assert (held[changed["id"]]["code"], held[changed["id"]]["name"]) == (456789, "Guest")
        assert not tenant.post(
            f"/emulator/smartlock/{tenant.keypad_lock}/keypad", json={"code": 987654}
        ).json()["opened"]
        assert get_key(tenant, removed)["verifiedDate"] > first_verified
        lock = tenant.get(f"/smartlock/{tenant.keypad_lock}").json()
        assert lock["checkedDate"]
        entries = tenant.get(f"/smartlock/{tenant.keypad_lock}/log").json()
        repair = [e for e in entries if e["action"] == 209]
        assert repair and "2 key(s) missing or different" in repair[0]["name"]


def test_a_key_the_server_does_not_know_is_removed(tmp_path: Path) -> None:
    with tenant_with(tmp_path, drift_check_seconds=0) as tenant:
        key = keypad_code(tenant)
        # a second key appears on the lock: the copy of ours under another slot
        slot = key["authId"]
        from keyhouse.store.models import SimulatedAuth

        with tenant.runtime.db.session() as session:
            mine = session.get(SimulatedAuth, (tenant.keypad_lock, slot))
            assert mine is not None
            session.add(
                SimulatedAuth(
                    smartlock_id=tenant.keypad_lock,
                    slot=slot + 40,
                    auth_key="e" * 24,
                    data={**mine.data, "code": 998877},
                )
            )
        assert tenant.post(f"/smartlock/{tenant.keypad_lock}/sync").status_code == 204
        assert sorted(entry["keyId"] for entry in on_lock(tenant).values()) == [key["id"]]


def test_the_periodic_check_repairs_within_one_interval(tmp_path: Path) -> None:
    with tenant_with(tmp_path, drift_check_seconds=0.5, worker_interval_seconds=0.1) as tenant:
        key = keypad_code(tenant)
        assert tamper(tenant, authId=key["authId"], enabled=False).status_code == 200
        started = time.monotonic()
        wait_until(lambda: next(iter(on_lock(tenant).values()))["enabled"] is True, 5, "the repair")
        assert time.monotonic() - started < 3.0


def test_tamper_names_an_empty_slot_and_asks_what_to_change(tenant: Tenant) -> None:
    empty = tamper(tenant, authId=77, remove=True)
    assert empty.status_code == 404 and empty.json()["field"] == "authId"
    nothing = tamper(tenant, authId=2)
    assert nothing.status_code == 400 and nothing.json()["field"] == "remove"


def test_latency_above_ten_seconds_is_refused(tenant: Tenant) -> None:
    answer = tenant.post(f"/emulator/smartlock/{tenant.keypad_lock}", json={"latencyMs": 10_001})
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == "latencyMs"


def test_a_slow_lock_takes_a_few_request_threads_and_says_no_to_more(tmp_path: Path) -> None:
    with tenant_with(tmp_path, actions_per_lock=2) as tenant:
        lock = tenant.plain_lock
        assert tenant.post(f"/emulator/smartlock/{lock}", json={"latencyMs": 1500}).status_code
        answers: list[int] = []
        barrier = threading.Barrier(5)

        def unlock() -> None:
            barrier.wait()
            answers.append(tenant.post(f"/smartlock/{lock}/action/unlock").status_code)

        threads = [threading.Thread(target=unlock) for _ in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(answers) == [204, 204, 423, 423, 423], answers


def test_locks_checked_together_are_spread_over_the_interval(tmp_path: Path) -> None:
    """120 locks last checked at one moment: each scan starts only its share of their checks
    (every lock once per interval: 120 locks / (300 s / 5 s) scans + 1 = 3), the longest
    unchecked first, instead of all 120 at once every interval."""
    with tenant_with(tmp_path, drift_check_seconds=0) as tenant:
        runtime = tenant.runtime
        with runtime.db.session() as session:
            for n in range(118):
                admin.add_lock(session, runtime.link, account_id=tenant.account_id, name=f"F{n}")
        long_ago = utcnow() - timedelta(hours=1)
        with runtime.db.session() as session:
            session.execute(update(Smartlock).values(checked_at=long_ago))
            session.execute(
                update(Smartlock)
                .where(Smartlock.id == tenant.plain_lock)
                .values(checked_at=long_ago - timedelta(minutes=1))
            )
        reconciler = Reconciler(
            runtime.db, runtime.links, owner="t", drift_check_seconds=300, scan_seconds=5
        )
        first = reconciler.locks_with_work()
        assert len(first) == 3 and first[0] == tenant.plain_lock, first
        seen = set(first)
        for _ in range(39):
            with runtime.db.session() as session:
                session.execute(
                    update(Smartlock).where(Smartlock.id.in_(first)).values(checked_at=utcnow())
                )
            first = reconciler.locks_with_work()
            assert 0 < len(first) <= 3 and not seen & set(first), first
            seen |= set(first)
        assert len(seen) == 120  # every lock within the interval's 60 scans
