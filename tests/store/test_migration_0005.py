"""Migration 0005 (keys become the desired state: revisions, tombstones, device references; the
queue of device operations goes) with data in it, on SQLite and on PostgreSQL, down and up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from keyhouse.runtime import Runtime
from keyhouse.settings import Settings
from keyhouse.store.database import Database

LOCK = 20594516853
KEYS = {
    # id: (sync_state, deleting, auth_id, code)
    "6b0000000000000000000001": ("applied", False, 2, 111111),
    "6b0000000000000000000002": ("failed", False, None, 222222),
    "6b0000000000000000000003": ("pending", False, None, 333333),
    "6b0000000000000000000004": ("pending", True, 3, 444444),
}


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        db = Database(Settings(data=tmp_path / "data").resolved_database_url)
        yield db
        db.dispose()
    else:
        yield request.getfixturevalue("postgres")


def fill_0004(db: Database) -> None:
    db.migrate("0004")
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO accounts (id, email, name, created_at) "
                "VALUES (1, 'o@example.com', 'O', '2026-11-20 10:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO smartlocks (id, account_id, type, nuki_id, name, timezone, keypad, "
                "favorite, auth_id, virtual, keys_version, created_at, updated_at) VALUES "
                "(:id, 1, 4, 'ABCD1234', 'Front Door', 'Europe/Vienna', true, false, 1, true, 0, "
                "'2026-11-20 10:00:00', '2026-11-20 10:00:00')"
            ),
            {"id": LOCK},
        )
        connection.execute(
            text(
                "INSERT INTO sim_locks (smartlock_id, online, keypad, state, battery_charge, "
                "door_state, last_action, trigger, latency_ms) "
                "VALUES (:id, true, true, 1, 100, 2, 0, 0, 0)"
            ),
            {"id": LOCK},
        )
        for key_id, (state, deleting, auth_id, code) in KEYS.items():
            connection.execute(
                text(
                    "INSERT INTO smartlock_auths (id, account_id, smartlock_id, auth_id, type, "
                    "name, enabled, remote_allowed, smart_actions_enabled, code, lock_count, "
                    "created_at, updated_at, sync_state, operation_id, deleting, error) VALUES "
                    "(:id, 1, :lock, :auth_id, 13, :name, true, false, false, :code, 0, "
                    "'2026-11-20 10:00:00', '2026-11-20 10:00:00', :state, NULL, :deleting, "
                    ":error)"
                ),
                {
                    "id": key_id,
                    "lock": LOCK,
                    "auth_id": auth_id,
                    "name": f"Key {code}",
                    "code": code,
                    "state": state,
                    "deleting": deleting,
                    "error": "lock reported: keypad code already exists"
                    if state == "failed"
                    else None,
                },
            )
        # what the lock holds: the applied key and the one being deleted
        for key_id, slot, code in (
            ("6b0000000000000000000001", 2, 111111),
            ("6b0000000000000000000004", 3, 444444),
        ):
            connection.execute(
                text(
                    "INSERT INTO sim_auths (smartlock_id, slot, auth_key, data) "
                    "VALUES (:lock, :slot, :key, :data)"
                ),
                {
                    "lock": LOCK,
                    "slot": slot,
                    "key": key_id,
                    "data": f'{{"type": 13, "name": "Key {code}", "code": {code}, '
                    '"enabled": true}',
                },
            )


def keys(db: Database) -> dict[str, tuple]:
    with db.engine.connect() as connection:
        return {
            row[0]: tuple(row[1:])
            for row in connection.execute(
                text(
                    "SELECT id, revision, applied_revision, failed_revision, device_ref, "
                    "deleting FROM smartlock_auths ORDER BY id"
                )
            )
        }


def test_0005_keeps_every_key_and_its_state_down_and_up(store: Database) -> None:
    fill_0004(store)
    store.migrate("0005")
    assert "device_operations" not in inspect(store.engine).get_table_names()
    assert keys(store) == {
        "6b0000000000000000000001": (1, 1, None, "2", False),
        "6b0000000000000000000002": (1, 0, 1, None, False),
        "6b0000000000000000000003": (1, 0, None, None, False),
        "6b0000000000000000000004": (1, 0, None, "3", True),
    }
    # a tombstone's code is free at once (partial unique index over live keys)
    with store.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO smartlock_auths (id, account_id, smartlock_id, type, name, enabled, "
                "remote_allowed, smart_actions_enabled, code, lock_count, created_at, "
                "updated_at, deleting) VALUES ('6b0000000000000000000005', 1, :lock, 13, 'New', "
                "true, false, false, 444444, 0, '2026-11-21 10:00:00', '2026-11-21 10:00:00', "
                "false)"
            ),
            {"lock": LOCK},
        )
        connection.execute(text("DELETE FROM smartlock_auths WHERE name = 'New'"))

    store.downgrade("0004")
    with store.engine.connect() as connection:
        states = dict(connection.execute(text("SELECT id, sync_state FROM smartlock_auths")).all())
        operations = connection.execute(
            text("SELECT auth_key, kind FROM device_operations ORDER BY auth_key")
        ).all()
    assert states == {key_id: state for key_id, (state, *_rest) in KEYS.items()}
    # the old worker gets an operation for each key that is not on its lock yet
    assert operations == [
        ("6b0000000000000000000003", "put_auth"),
        ("6b0000000000000000000004", "remove_auth"),
    ]
    store.migrate()
    assert keys(store)["6b0000000000000000000004"][4]  # still a tombstone


def test_after_0005_the_reconciler_brings_the_lock_to_the_keys(tmp_path: Path) -> None:
    # no drift check: only what the migrated rows ask for goes to the lock
    settings = Settings(data=tmp_path / "data", drift_check_seconds=0)
    db = Database(settings.resolved_database_url)
    fill_0004(db)
    db.dispose()
    runtime = Runtime(settings)
    runtime.start()  # migrates to the newest revision, then reconciles every lock with work
    try:
        runtime.device_worker.submit([LOCK])
        assert runtime.device_worker.wait([LOCK], 5)
        held = runtime.link.read_all(LOCK)
        codes = sorted(entry["code"] for entry in held.values())
        # the applied key stays, the pending one arrives, the tombstone is gone; the failed
        # revision is not sent again until it changes
        assert codes == [111111, 333333]
        assert keys(runtime.db) == {
            "6b0000000000000000000001": (1, 1, None, "2", False),
            "6b0000000000000000000002": (1, 0, 1, None, False),
            "6b0000000000000000000003": (1, 1, None, "3", False),
        }
    finally:
        runtime.stop()
