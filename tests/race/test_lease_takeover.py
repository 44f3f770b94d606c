"""Lease takeover between two `keyhouse serve` processes on one PostgreSQL database: the first
is SIGSTOPped while it holds a lock's lease in the middle of a device call; the second takes the
lease after it expires and finishes the work; the first, continued, writes nothing stale to the
lock (the simulator's fence) and records nothing (the epoch check)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
from racekit import open_store
from sqlalchemy import text

from conftest import start_server

TIMING = {
    "KEYHOUSE_LEASE_SECONDS": "3",
    "KEYHOUSE_DEVICE_TIMEOUT_SECONDS": "2.5",
    "KEYHOUSE_CONFIRM_WAIT_SECONDS": "0",
    "KEYHOUSE_WORKER_INTERVAL_SECONDS": "0.3",
    "KEYHOUSE_DRIFT_CHECK_SECONDS": "0",
}


def test_a_paused_holder_loses_its_lease_and_records_nothing_stale(tmp_path: Path) -> None:
    with open_store("postgresql", tmp_path) as store:
        env = {**store.env, **TIMING}
        first, one = start_server(tmp_path / "one", env)
        second = None
        try:
            lock = one.lock_ids[0]
            api = httpx.Client(base_url=one.url, headers=one.headers, timeout=30)
            assert (
                api.post(f"/emulator/smartlock/{lock}", json={"latencyMs": 2000}).status_code == 200
            )
            created = api.put(
                f"/smartlock/{lock}/auth",
                json={"name": "First", "type": 13, "code": 345678, "remoteAllowed": False},
            )
            assert created.status_code == 204, created.text
            key = api.get(f"/smartlock/{lock}/auth").json()[0]
            time.sleep(0.5)  # the first process holds the lease and waits on the lock
            with store.engine().connect() as connection:
                owner_before, epoch_before = connection.execute(
                    text("SELECT owner, epoch FROM device_leases WHERE smartlock_id = :l"),
                    {"l": lock},
                ).one()
            os.kill(first.pid, signal.SIGSTOP)

            second, two = start_server(tmp_path / "two", env)
            other = httpx.Client(base_url=two.url, headers=one.headers, timeout=30)
            # the second process changes the key, takes the lease once it expires, and applies
            renamed = other.post(f"/smartlock/{lock}/auth/{key['id']}", json={"name": "Second"})
            assert renamed.status_code == 204, renamed.text
            deadline = time.monotonic() + 15
            while True:
                shown = other.get(f"/smartlock/{lock}/auth/{key['id']}").json()
                if shown["syncState"] == "applied":
                    break
                assert time.monotonic() < deadline, shown
                time.sleep(0.1)
            with store.engine().connect() as connection:
                owner_after, epoch_after = connection.execute(
                    text("SELECT owner, epoch FROM device_leases WHERE smartlock_id = :l"),
                    {"l": lock},
                ).one()
            assert owner_after != owner_before and epoch_after > epoch_before

            os.kill(first.pid, signal.SIGCONT)  # the paused call goes on, with its old epoch
            time.sleep(3)
            with store.engine().connect() as connection:
                held = (
                    connection.execute(
                        text("SELECT data FROM sim_auths WHERE smartlock_id = :l"), {"l": lock}
                    )
                    .scalars()
                    .all()
                )
                revision, applied = connection.execute(
                    text("SELECT revision, applied_revision FROM smartlock_auths WHERE id = :k"),
                    {"k": key["id"]},
                ).one()
            names = [data["name"] if isinstance(data, dict) else data for data in held]
            assert names == ["Second"], names  # the stale "First" never overwrote it
            assert applied == revision
            final = other.get(f"/smartlock/{lock}/auth/{key['id']}").json()
            assert (final["name"], final["syncState"]) == ("Second", "applied")
        finally:
            for process in (first, second):
                if process is not None:
                    os.kill(process.pid, signal.SIGCONT)
                    process.terminate()
                    process.wait(10)
