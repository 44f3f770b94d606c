"""Leases on locks: one reconciler per lock across processes (here two runtimes on one store),
a lease that expires passes to another, and the one that lost it records nothing stale and
can't write to the lock any more (the simulator's fence)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from conftest import Tenant, tenant_with
from keyhouse.devices.link import StaleLease
from keyhouse.devices.sync import LeaseBusy, LeaseLost
from keyhouse.runtime import Runtime
from keyhouse.settings import Settings
from keyhouse.store import leases
from keyhouse.store.models import SmartlockAuth


def code_key(tenant: Tenant, code: int = 345678) -> dict:
    return tenant.create_key(
        tenant.keypad_lock, name="Cleaner", type=13, code=code, remoteAllowed=False
    )


def test_one_holder_at_a_time_and_a_new_epoch_for_each_grant(tmp_path: Path) -> None:
    with tenant_with(tmp_path) as tenant:
        lock = tenant.keypad_lock
        db = tenant.runtime.db
        first = db.transaction(lambda s: leases.acquire(s, lock, "a", 30))
        assert first is not None
        assert db.transaction(lambda s: leases.acquire(s, lock, "b", 30)) is None
        db.transaction(lambda s: leases.release(s, lock, "a", first))
        second = db.transaction(lambda s: leases.acquire(s, lock, "b", 30))
        assert second == first + 1
        assert not db.transaction(lambda s: leases.renew(s, lock, "a", first, 30))
        assert db.transaction(lambda s: leases.renew(s, lock, "b", second, 30))


def test_an_expired_lease_passes_on_and_its_old_holder_records_nothing(
    tmp_path: Path,
) -> None:
    with tenant_with(tmp_path, lease_seconds=0.5, device_timeout_seconds=0.2) as tenant:
        lock = tenant.keypad_lock
        key = code_key(tenant)
        assert key["syncState"] == "applied"
        tenant.runtime.device_worker.stop()  # only the reconcilers of this test act from here
        other = Runtime(tenant.runtime.settings)  # a second process on the same store
        try:
            mine = tenant.runtime.reconciler._acquire(lock)
            assert mine is not None
            assert other.reconciler._acquire(lock) is None  # held
            time.sleep(0.7)  # … and the holder pauses past its lease
            theirs = other.reconciler._acquire(lock)
            assert theirs is not None and theirs.epoch > mine.epoch
            # the new holder writes to the lock; then the paused one wakes up
            answer = tenant.post(f"/smartlock/{lock}/auth/{key['id']}", json={"name": "New"})
            assert answer.status_code == 204
            with tenant.runtime.db.read() as session:
                row = session.scalars(
                    select(SmartlockAuth).where(SmartlockAuth.id == key["id"])
                ).one()
                session.expunge(row)
            link = other.links.of(lock)
            link.put(lock, row.id, {"type": 13, "name": "New", "code": 345678}, None, theirs.epoch)
            with pytest.raises(StaleLease):
                link.put(lock, row.id, {"type": 13, "name": "Old"}, None, mine.epoch)
            with pytest.raises(LeaseLost):
                tenant.runtime.reconciler._placed(row, mine, "2", 2)
            # nothing stale was recorded: the key is still ahead of the lock for the holder
            with tenant.runtime.db.read() as session:
                fresh = session.get(SmartlockAuth, key["id"])
                assert fresh is not None and fresh.applied_revision < fresh.revision
            assert tenant.runtime.link.read_all(lock)["2"]["name"] == "New"
        finally:
            other.db.dispose()


def test_sync_while_another_process_holds_the_lease_is_423(tmp_path: Path) -> None:
    with tenant_with(tmp_path) as tenant:
        db = tenant.runtime.db
        assert db.transaction(lambda s: leases.acquire(s, tenant.keypad_lock, "elsewhere", 30))
        answer = tenant.post(f"/smartlock/{tenant.keypad_lock}/sync")
        assert answer.status_code == 423, answer.text
        assert answer.headers["Retry-After"] == "1"
        with pytest.raises(LeaseBusy):
            tenant.runtime.reconciler.repair(tenant.keypad_lock)


def test_a_device_call_must_be_shorter_than_the_lease(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must be shorter than KEYHOUSE_LEASE_SECONDS"):
        Settings(data=tmp_path, lease_seconds=5, device_timeout_seconds=10)


def test_a_lease_of_a_process_that_is_gone_is_taken_at_once(tmp_path: Path) -> None:
    import socket
    import subprocess

    with tenant_with(tmp_path) as tenant:
        lock = tenant.keypad_lock
        db = tenant.runtime.db
        finished = subprocess.Popen(["true"])  # once reaped, its process id is free
        finished.wait()
        dead = f"{socket.gethostname()[:32]}:{finished.pid}:deadbeef"
        epoch = db.transaction(lambda s: leases.acquire(s, lock, dead, 30))
        assert epoch is not None
        taken = tenant.runtime.reconciler._acquire(lock)
        assert taken is not None and taken.epoch == epoch + 1
        # a live holder (this very test process, seen as another owner) keeps its lease
        db.transaction(lambda s: leases.release(s, lock, tenant.runtime.owner, taken.epoch))
        alive = f"{socket.gethostname()[:32]}:{os.getppid()}:cafe"
        assert db.transaction(lambda s: leases.acquire(s, lock, alive, 30)) is not None
        assert tenant.runtime.reconciler._acquire(lock) is None
