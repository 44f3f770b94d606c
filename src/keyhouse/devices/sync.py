"""Applies queued device operations to their lock, in order, and records the outcome on the key."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict

from sqlalchemy import select

from keyhouse.devices.link import DeviceLink, DeviceRejected, DeviceUnreachable
from keyhouse.rules.dates import utcnow
from keyhouse.store.database import Database
from keyhouse.store.models import DeviceOperation, Smartlock, SmartlockAuth

log = logging.getLogger(__name__)


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

    def _apply_next(self, smartlock_id: int) -> bool:
        with self.db.session() as session:
            # Row lock on the smartlock serialises workers of several processes (PostgreSQL).
            session.execute(
                select(Smartlock.id).where(Smartlock.id == smartlock_id).with_for_update()
            )
            op = session.scalars(
                select(DeviceOperation)
                .where(
                    DeviceOperation.smartlock_id == smartlock_id,
                    DeviceOperation.status == "pending",
                )
                .order_by(DeviceOperation.id)
                .limit(1)
            ).first()
            if op is None:
                return False
            op.attempts += 1
            auth = session.get(SmartlockAuth, op.auth_key)
            try:
                if op.kind == "put_auth":
                    slot = self.link.put_auth(smartlock_id, op.auth_key, op.payload)
                else:
                    self.link.remove_auth(smartlock_id, op.auth_key)
                    slot = None
            except DeviceUnreachable as exc:
                op.error = str(exc)
                return False
            except DeviceRejected as exc:
                op.status = "failed"
                op.error = f"lock reported: {exc.reason} (device error {exc.code})"
                op.done_at = utcnow()
                if auth is not None and auth.operation_id == op.operation_id:
                    auth.sync_state = "failed"
                    auth.error = op.error
                    auth.operation_id = None
                    auth.deleting = False
                log.info("operation %s on lock %s failed: %s", op.id, smartlock_id, op.error)
                return True
            op.status = "done"
            op.error = None
            op.done_at = utcnow()
            if auth is not None:
                if op.kind == "remove_auth":
                    if auth.operation_id == op.operation_id:
                        session.delete(auth)
                else:
                    auth.auth_id = slot
                    if auth.operation_id == op.operation_id:
                        auth.sync_state = "applied"
                        auth.operation_id = None
                        auth.error = None
            return True
