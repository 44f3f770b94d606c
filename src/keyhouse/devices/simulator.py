"""Virtual locks: devices with their own authorization table, kept in their own rows.

A virtual lock knows nothing of the server's records: it gets the same calls a real lock
would, gives slots (``authId``) and enforces its own limits and keypad-code uniqueness.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from keyhouse.devices.link import DeviceRejected, DeviceUnreachable, LockStatus
from keyhouse.rules.keypad import MAX_AUTHS_PER_LOCK, MAX_KEYPAD_CODES_PER_LOCK
from keyhouse.store.database import Database
from keyhouse.store.models import SimulatedAuth, SimulatedLock

KEYPAD_CODE_TYPE = 13
FIRST_KEY_SLOT = 2  # slot 1 is the owner's own authorization (Smartlock.authId)


class VirtualLockLink:
    """The simulator behind the DeviceLink interface."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def install(session: Session, smartlock_id: int, *, keypad: bool) -> None:
        """Create the virtual device for a new lock (online, locked, full battery)."""
        session.merge(SimulatedLock(smartlock_id=smartlock_id, keypad=keypad))

    def _device(self, session: Any, smartlock_id: int) -> SimulatedLock:
        device = session.get(SimulatedLock, smartlock_id)
        if device is None or not device.online:
            raise DeviceUnreachable(f"virtual lock {smartlock_id} is offline")
        return device

    def put_auth(self, smartlock_id: int, auth_key: str, data: dict[str, Any]) -> int:
        with self.db.session() as session:
            device = self._device(session, smartlock_id)
            rows = session.scalars(
                select(SimulatedAuth).where(SimulatedAuth.smartlock_id == smartlock_id)
            ).all()
            mine = next((r for r in rows if r.auth_key == auth_key), None)
            others = [r for r in rows if r.auth_key != auth_key]
            if data.get("type") == KEYPAD_CODE_TYPE:
                if not device.keypad:
                    raise DeviceRejected("2B", "no keypad is paired with this lock")
                if any(r.data.get("code") == data.get("code") for r in others):
                    raise DeviceRejected("2A", "keypad code already exists")
                codes = sum(1 for r in others if r.data.get("type") == KEYPAD_CODE_TYPE)
                if mine is None and codes >= MAX_KEYPAD_CODES_PER_LOCK:
                    raise DeviceRejected("13", "the keypad holds 100 codes already")
            if mine is not None:
                mine.data = dict(data)
                return mine.slot
            if len(others) >= MAX_AUTHS_PER_LOCK:
                raise DeviceRejected("13", "the lock holds 200 authorizations already")
            used = {r.slot for r in rows}
            slot = next(s for s in range(FIRST_KEY_SLOT, FIRST_KEY_SLOT + 10_000) if s not in used)
            session.add(
                SimulatedAuth(smartlock_id=smartlock_id, slot=slot, auth_key=auth_key, data=data)
            )
            return slot

    def remove_auth(self, smartlock_id: int, auth_key: str) -> None:
        with self.db.session() as session:
            self._device(session, smartlock_id)
            for row in session.scalars(
                select(SimulatedAuth).where(
                    SimulatedAuth.smartlock_id == smartlock_id, SimulatedAuth.auth_key == auth_key
                )
            ):
                session.delete(row)

    def status(self, smartlock_id: int) -> LockStatus:
        with self.db.session() as session:
            device = session.get(SimulatedLock, smartlock_id)
            if device is None:
                return LockStatus(False, 255, 0, False, 0, False)
            return LockStatus(
                online=device.online,
                state=device.state,
                battery_charge=device.battery_charge,
                battery_critical=device.battery_charge <= 20,
                door_state=device.door_state,
                keypad_paired=device.keypad,
            )

    def auth_count(self, smartlock_id: int) -> int:
        """How many authorizations the device holds (for tests and the admin view)."""
        with self.db.session() as session:
            return (
                session.scalar(
                    select(func.count()).where(SimulatedAuth.smartlock_id == smartlock_id)
                )
                or 0
            )
