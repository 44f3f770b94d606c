"""Applies queued device operations to their lock, in order, and records the outcome on the key."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict

from sqlalchemy import select

from keyhouse.devices.link import DeviceLink, DeviceRejected, DeviceUnreachable
from keyhouse.rules.dates import utcnow
from keyhouse.store import repo
from keyhouse.store.database import Database
from keyhouse.store.models import DeviceOperation, SmartlockAuth

log = logging.getLogger(__name__)

# Device errors that mean "not now" rather than "no": the operation stays queued.
RETRYABLE_DEVICE_ERRORS = {"45"}  # BUSY


class DeviceSync:
    """Drains each lock's queue of ``DeviceOperation`` rows through its ``DeviceLink``."""

    def __init__(self, db: Database, link: DeviceLink) -> None:
        self.db = db
        self.link = link
        self._lock_guards: dict[int, threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()

    def _guard_for(self, smartlock_id: int) -> threading.Lock:
        with self._guard:
            return self._lock_guards[smartlock_id]

    def locks_with_pending(self) -> list[int]:
        with self.db.session() as session:
            return list(
                session.scalars(
                    select(DeviceOperation.smartlock_id)
                    .where(DeviceOperation.status == "pending")
                    .distinct()
                )
            )

    def apply_pending(self, smartlock_id: int) -> int:
        """Apply the lock's pending operations in order; stop when it is unreachable."""
        applied = 0
        with self._guard_for(smartlock_id):
            while self._apply_next(smartlock_id):
                applied += 1
        return applied

    def _next_operation(self, smartlock_id: int) -> DeviceOperation | None:
        with self.db.session() as session:
            return session.scalars(
                select(DeviceOperation)
                .where(
                    DeviceOperation.smartlock_id == smartlock_id,
                    DeviceOperation.status == "pending",
                )
                .order_by(DeviceOperation.id)
                .limit(1)
            ).first()

    def _apply_next(self, smartlock_id: int) -> bool:
        """Apply the oldest pending operation of the lock; False when there is none to apply.

        The device is called outside any transaction of ours (a real lock is a remote party;
        SQLite would refuse a write from a transaction that began before the device's own).
        Operations are idempotent per key, so one applied twice after a crash is harmless.
        """
        op = self._next_operation(smartlock_id)
        if op is None:
            return False
        slot: int | None = None
        try:
            if op.kind == "put_auth":
                slot = self.link.put_auth(smartlock_id, op.auth_key, op.payload)
            else:
                self.link.remove_auth(smartlock_id, op.auth_key)
        except (DeviceUnreachable, DeviceRejected) as exc:
            if isinstance(exc, DeviceRejected) and exc.code not in RETRYABLE_DEVICE_ERRORS:
                self._record(op, None, f"lock reported: {exc.reason} (device error {exc.code})")
                return True
            with self.db.session() as session:
                row = session.get(DeviceOperation, op.id)
                if row is not None:
                    row.attempts += 1
                    row.error = str(exc)
            return False
        self._record(op, slot, None)
        return True

    def _record(self, op: DeviceOperation, slot: int | None, failure: str | None) -> None:
        with self.db.session() as session:
            row = session.get(DeviceOperation, op.id)
            if row is None or row.status != "pending":
                return
            row.attempts += 1
            row.done_at = utcnow()
            auth = session.get(SmartlockAuth, op.auth_key)
            repo.bump_keys_version(session, op.smartlock_id)
            current = auth is not None and auth.operation_id == op.operation_id
            if failure is not None:
                row.status = "failed"
                row.error = failure
                log.info("operation %s on lock %s failed: %s", op.id, op.smartlock_id, failure)
                if auth is not None and current:
                    auth.sync_state = "failed"
                    auth.error = failure
                    auth.operation_id = None
                    auth.deleting = False
                return
            row.status = "done"
            row.error = None
            if auth is None:
                return
            if op.kind == "remove_auth":
                if current:
                    session.delete(auth)
                return
            auth.auth_id = slot
            if current:
                auth.sync_state = "applied"
                auth.operation_id = None
                auth.error = None
