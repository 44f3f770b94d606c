"""Two processes on one PostgreSQL database (here: two runtimes, as in two `keyhouse serve`):
a key written through one is brought to its lock by the other at once, woken by NOTIFY rather
than its next scan."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from conftest import make_tenant
from keyhouse.app import create_app
from keyhouse.runtime import Runtime
from keyhouse.settings import Settings
from keyhouse.store.database import Database


def test_a_change_wakes_the_other_process(tmp_path: Path, postgres: Database) -> None:
    url = postgres.url
    postgres.migrate()
    # The writer never brings locks up to date itself; the other process scans once a day.
    writer = Runtime(Settings(data=tmp_path / "a", database_url=url, confirm_wait_seconds=0))
    worker = Runtime(Settings(data=tmp_path / "b", database_url=url, worker_interval_seconds=86400))
    worker.start()
    try:
        with TestClient(create_app(runtime=writer)) as client:
            writer.device_worker.stop()
            tenant = make_tenant(client, writer, "owner@example.com")
            started = time.monotonic()
            key = tenant.create_key(
                tenant.keypad_lock, name="Cleaner", type=13, code=345678, remoteAllowed=False
            )
            assert key["syncState"] == "pending"
            while time.monotonic() - started < 5:
                shown = tenant.get(f"/smartlock/{tenant.keypad_lock}/auth/{key['id']}").json()
                if shown["syncState"] == "applied":
                    break
                time.sleep(0.02)
            assert shown["syncState"] == "applied", shown
            assert time.monotonic() - started < 2.0
    finally:
        worker.stop()
