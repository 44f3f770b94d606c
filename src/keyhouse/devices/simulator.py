"""Virtual locks: devices with their own state and authorization table, in their own rows.

A virtual lock knows nothing of the server's records: it gets the same calls a real lock would,
gives slots (``authId``), enforces its own limits and keypad-code uniqueness, and decides at the
door with its own copy of each key. Per lock it can be taken offline, slowed down, or made to
fail with an injected fault; settings add latency and flakiness to every lock.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from keyhouse.devices.link import (
    DeviceRejected,
    DeviceUnreachable,
    DoorEvent,
    Placed,
    StaleLease,
)
from keyhouse.rules.access import KeyRules, decide
from keyhouse.rules.keypad import KEYPAD_CODE_TYPE, MAX_AUTHS_PER_LOCK, MAX_KEYPAD_CODES_PER_LOCK
from keyhouse.store.database import Database
from keyhouse.store.models import SimulatedAuth, SimulatedLock

FIRST_KEY_SLOT = 2  # slot 1 is the owner's own authorization (Smartlock.authId)
FAULTS = ("busy", "motorBlocked", "codeExists", "full")

# Lock states (types 0/3/4) and what each action leaves the lock in.
LOCKED, UNLOCKED, UNLATCHED, MOTOR_BLOCKED = 1, 3, 5, 254
ACTION_RESULT = {1: UNLOCKED, 2: LOCKED, 3: UNLATCHED, 4: LOCKED, 5: LOCKED}
OPENER_RESULT = {1: 3, 2: 1, 3: 5, 6: 3, 7: 1}
OPENING_ACTIONS = {1, 3, 5}
TRIGGER_BUTTON, TRIGGER_APP, TRIGGER_KEYPAD = 2, 5, 255
LOG_SUCCESS, LOG_MOTOR_BLOCKED, LOG_BUSY, LOG_REJECTED = 0, 1, 4, 9


@dataclass(frozen=True)
class EmulatorState:
    smartlock_id: int
    online: bool
    latency_ms: int
    fault: str | None
    state: int
    keypad: bool
    battery_charge: int
    door_state: int
    auths: int


class VirtualLockLink:
    """The simulator behind the DeviceLink interface, plus the emulator's controls."""

    unknown_keys = "remove"

    def __init__(
        self,
        db: Database,
        *,
        latency_ms: int = 0,
        flakiness: float = 0.0,
        timeout_seconds: float = 10.0,
    ) -> None:
        self.db = db
        self.latency_ms = latency_ms
        self.flakiness = flakiness
        self.timeout_seconds = timeout_seconds
        # Set on shutdown: a call waiting out its latency gives up at once.
        self.closing = threading.Event()

    @staticmethod
    def install(session: Session, smartlock_id: int, *, keypad: bool) -> None:
        """Create the virtual device for a new lock (online, locked, full battery)."""
        session.merge(SimulatedLock(smartlock_id=smartlock_id, keypad=keypad))

    # --- reaching the device ------------------------------------------------------------------

    @contextmanager
    def _reach(
        self, smartlock_id: int, *, durable: bool = True
    ) -> Iterator[tuple[Session, SimulatedLock]]:
        """The device's own rows, after its latency; unreachable when offline or flaky.
        ``durable=False`` for key changes: the reconciler's bookkeeping (see
        ``Database.session``); a lost one is sent again."""
        if not self.latency_ms:
            # The device's own latency is read in the write session: a device without one
            # (the usual case) is reached in that one session, without a read before it.
            with self.db.session(durable=durable) as session:
                device = session.get(SimulatedLock, smartlock_id)
                if device is None or not device.latency_ms:
                    self._answering(smartlock_id, device)
                    yield session, device
                    return
                delay = device.latency_ms  # nothing written: left at once, to wait outside
        else:
            with self.db.read() as session:
                device = session.get(SimulatedLock, smartlock_id)
                delay = (device.latency_ms if device else 0) + self.latency_ms
        # The latency is waited out on an event, never a bare sleep: a call gives up after
        # the link's timeout, and at once when the process shuts down.
        waited = min(delay / 1000, self.timeout_seconds)
        if self.closing.wait(waited):
            raise DeviceUnreachable(f"virtual lock {smartlock_id}: the server is stopping")
        if delay / 1000 > self.timeout_seconds:
            raise DeviceUnreachable(
                f"virtual lock {smartlock_id} did not answer within {self.timeout_seconds:g} s"
            )
        with self.db.session(durable=durable) as session:
            device = session.get(SimulatedLock, smartlock_id)
            self._answering(smartlock_id, device)
            assert device is not None
            yield session, device

    def _answering(self, smartlock_id: int, device: SimulatedLock | None) -> None:
        """Unreachable when flaky this time, missing, or offline."""
        if self.flakiness and random.random() < self.flakiness:
            raise DeviceUnreachable(f"virtual lock {smartlock_id} did not answer (flakiness)")
        if device is None or not device.online:
            raise DeviceUnreachable(f"virtual lock {smartlock_id} is offline")

    # --- authorizations -------------------------------------------------------------------------

    def put(
        self,
        smartlock_id: int,
        key_id: str,
        data: dict[str, Any],
        ref: str | None,
        fence: int = 0,
    ) -> Placed:
        slot = self._put(smartlock_id, key_id, data, fence)
        return Placed(ref=str(slot), auth_id=slot)

    @staticmethod
    def _fenced(device: SimulatedLock, fence: int) -> None:
        """Refuse a change from an older lease than the newest the lock has seen."""
        if fence < device.fence:
            raise StaleLease(
                f"virtual lock {device.smartlock_id} has had a change under lease epoch "
                f"{device.fence}; this one comes with {fence}"
            )
        device.fence = fence

    def _put(self, smartlock_id: int, auth_key: str, data: dict[str, Any], fence: int) -> int:
        with self._reach(smartlock_id, durable=False) as (session, device):
            if device.fault == "busy":
                raise DeviceRejected("45", "the lock is busy")
            self._fenced(device, fence)
            # The lock's table as plain rows (slot, key): no ORM objects to build, and no JSON
            # to decode but the keypad codes' (read only for a keypad code).
            table = SimulatedAuth.__table__
            rows = session.execute(
                select(table.c.slot, table.c.auth_key).where(table.c.smartlock_id == smartlock_id)
            ).all()
            mine = next((r for r in rows if r.auth_key == auth_key), None)
            others = [r for r in rows if r.auth_key != auth_key]
            if data.get("type") == KEYPAD_CODE_TYPE:
                if not device.keypad:
                    raise DeviceRejected("2B", "no keypad is paired with this lock")
                codes = [
                    code
                    for key, code in session.execute(
                        select(table.c.auth_key, table.c.data["code"].as_integer()).where(
                            table.c.smartlock_id == smartlock_id,
                            table.c.data["type"].as_integer() == KEYPAD_CODE_TYPE,
                        )
                    )
                    if key != auth_key
                ]
                if data.get("code") in codes or device.fault == "codeExists":
                    raise DeviceRejected("2A", "keypad code already exists")
                if mine is None and len(codes) >= MAX_KEYPAD_CODES_PER_LOCK:
                    raise DeviceRejected("13", "the keypad holds 100 codes already")
            if mine is not None:
                session.execute(
                    update(table)
                    .where(table.c.smartlock_id == smartlock_id, table.c.slot == mine.slot)
                    .values(data=dict(data), writes=table.c.writes + 1)
                )
                return int(mine.slot)
            if len(others) >= MAX_AUTHS_PER_LOCK or device.fault == "full":
                raise DeviceRejected("13", "the lock holds 200 authorizations already")
            used = {r.slot for r in rows}
            slot = next(s for s in range(FIRST_KEY_SLOT, FIRST_KEY_SLOT + 10_000) if s not in used)
            session.execute(
                insert(table).values(
                    smartlock_id=smartlock_id, slot=slot, auth_key=auth_key, data=data, writes=1
                )
            )
            return slot

    def remove(self, smartlock_id: int, key_id: str, ref: str | None, fence: int = 0) -> None:
        with self._reach(smartlock_id, durable=False) as (session, device):
            if device.fault == "busy":
                raise DeviceRejected("45", "the lock is busy")
            self._fenced(device, fence)
            for row in session.scalars(
                select(SimulatedAuth).where(SimulatedAuth.smartlock_id == smartlock_id)
            ):
                if row.auth_key == key_id or (ref is not None and str(row.slot) == ref):
                    session.delete(row)

    def read_all(self, smartlock_id: int) -> dict[str, dict[str, Any]]:
        with self._reach(smartlock_id) as (session, _device):
            rows = session.scalars(
                select(SimulatedAuth).where(SimulatedAuth.smartlock_id == smartlock_id)
            )
            return {str(row.slot): {**row.data, "keyId": row.auth_key} for row in rows}

    def auth_count(self, smartlock_id: int) -> int:
        """How many authorizations the device holds (for tests and the admin view)."""
        with self.db.read() as session:
            return (
                session.scalar(
                    select(func.count()).where(SimulatedAuth.smartlock_id == smartlock_id)
                )
                or 0
            )

    # --- state and actions ----------------------------------------------------------------------

    def _move(
        self, device: SimulatedLock, device_type: int, action: int, trigger: int
    ) -> tuple[int, str | None]:
        """Run the motor: (log state, error). The device's state follows."""
        if device.fault == "busy":
            return LOG_BUSY, "the lock is busy"
        if device.fault == "motorBlocked":
            device.state = MOTOR_BLOCKED
            device.last_action = action
            device.trigger = trigger
            return LOG_MOTOR_BLOCKED, "motor blocked"
        results = OPENER_RESULT if device_type == 2 else ACTION_RESULT
        device.state = results[action]
        device.last_action = action
        device.trigger = trigger
        return LOG_SUCCESS, None

    def act(
        self, smartlock_id: int, action: int, option: int, trigger: int, device_type: int = 4
    ) -> DoorEvent:
        with self._reach(smartlock_id) as (_session, device):
            state, error = self._move(device, device_type, action, trigger)
        return DoorEvent(
            action=action,
            trigger=trigger,
            state=state,
            opened=state == LOG_SUCCESS and action in OPENING_ACTIONS,
            reason=f"lock reported: {error}" if error else "done",
            error=error,
        )

    def press_button(self, smartlock_id: int, device_type: int = 4) -> DoorEvent:
        """A person presses the button: an unlocked lock locks, any other unlocks."""
        with self._reach(smartlock_id) as (_session, device):
            action = 2 if device.state in (UNLOCKED, UNLATCHED) else 1
            state, error = self._move(device, device_type, action, TRIGGER_BUTTON)
        return DoorEvent(
            action=action,
            trigger=TRIGGER_BUTTON,
            state=state,
            opened=state == LOG_SUCCESS and action in OPENING_ACTIONS,
            reason=f"lock reported: {error}"
            if error
            else ("unlocked" if action == 1 else "locked"),
            error=error,
        )

    def enter_code(
        self, smartlock_id: int, code: int, at: datetime, timezone: str, device_type: int = 4
    ) -> DoorEvent:
        """A person types a code on the keypad; the lock decides with its own copy of the key."""
        with self._reach(smartlock_id) as (session, device):
            if not device.keypad:
                raise DeviceRejected("2B", "no keypad is paired with this lock")
            row = next(
                (
                    r
                    for r in session.scalars(
                        select(SimulatedAuth).where(SimulatedAuth.smartlock_id == smartlock_id)
                    )
                    if r.data.get("type") == KEYPAD_CODE_TYPE and r.data.get("code") == code
                ),
                None,
            )
            if row is None:
                return DoorEvent(
                    action=1,
                    trigger=TRIGGER_KEYPAD,
                    state=LOG_REJECTED,
                    opened=False,
                    reason="refused: no keypad code on this lock matches",
                    source=1,
                    error="unknown keypad code",
                )
            return self._use(
                device, device_type, row, 1, TRIGGER_KEYPAD, at, timezone, remote=False, source=1
            )

    def use_app_key(
        self,
        smartlock_id: int,
        slot: int,
        action: int,
        at: datetime,
        timezone: str,
        *,
        remote: bool,
        device_type: int = 4,
        trigger: int = TRIGGER_APP,
    ) -> DoorEvent:
        """A person uses the app key in ``slot`` (near the door, or remotely).

        ``trigger`` is what the log shows: the app (5) by default, the web (4) when the key is
        used from the guest page.
        """
        with self._reach(smartlock_id) as (session, device):
            row = session.get(SimulatedAuth, (smartlock_id, slot))
            if row is None or row.data.get("type") == KEYPAD_CODE_TYPE:
                what = "a keypad code" if row is not None else "empty"
                return DoorEvent(
                    action=action,
                    trigger=trigger,
                    state=LOG_REJECTED,
                    opened=False,
                    reason=f"refused: slot {slot} on this lock is {what}, not an app key",
                    slot=slot,
                    error="no such app key",
                )
            return self._use(device, device_type, row, action, trigger, at, timezone, remote=remote)

    def _use(
        self,
        device: SimulatedLock,
        device_type: int,
        row: SimulatedAuth,
        action: int,
        trigger: int,
        at: datetime,
        timezone: str,
        *,
        remote: bool,
        source: int = 0,
    ) -> DoorEvent:
        decision = decide(KeyRules.from_payload(row.data), at, timezone, remote=remote)
        name = str(row.data.get("name") or "")
        if not decision.allowed:
            return DoorEvent(
                action=action,
                trigger=trigger,
                state=LOG_REJECTED,
                opened=False,
                reason=decision.reason,
                auth_key=row.auth_key,
                slot=row.slot,
                name=name,
                source=source,
                error=decision.reason,
            )
        state, error = self._move(device, device_type, action, trigger)
        return DoorEvent(
            action=action,
            trigger=trigger,
            state=state,
            opened=state == LOG_SUCCESS and action in OPENING_ACTIONS,
            reason=f"lock reported: {error}" if error else decision.reason,
            auth_key=row.auth_key,
            slot=row.slot,
            name=name,
            source=source,
            error=error,
        )

    # --- emulator controls ----------------------------------------------------------------------

    def tamper(self, smartlock_id: int, slot: int, changes: dict[str, Any] | None) -> bool:
        """Change the lock's own copy of the key in ``slot`` behind the server's back: remove
        it (``changes`` None) or overwrite some of its fields. False if the slot is empty."""
        with self.db.session() as session:
            row = session.get(SimulatedAuth, (smartlock_id, slot))
            if row is None:
                return False
            if changes is None:
                session.delete(row)
            else:
                row.data = {**row.data, **changes}
            return True

    def configure(self, smartlock_id: int, changes: dict[str, Any]) -> EmulatorState:
        """Set ``online``, ``latency_ms`` and ``fault`` (keys present are changed)."""
        with self.db.session() as session:
            device = session.get(SimulatedLock, smartlock_id)
            if device is None:
                raise DeviceUnreachable(f"smartlock {smartlock_id} is not a virtual lock")
            for name, value in changes.items():
                setattr(device, name, value)
        return self.emulator_state(smartlock_id)

    def emulator_state(self, smartlock_id: int) -> EmulatorState:
        with self.db.read() as session:
            device = session.get(SimulatedLock, smartlock_id)
            if device is None:
                raise DeviceUnreachable(f"smartlock {smartlock_id} is not a virtual lock")
            auths = session.scalar(
                select(func.count()).where(SimulatedAuth.smartlock_id == smartlock_id)
            )
            return EmulatorState(
                smartlock_id=smartlock_id,
                online=device.online,
                latency_ms=device.latency_ms,
                fault=device.fault,
                state=device.state,
                keypad=device.keypad,
                battery_charge=device.battery_charge,
                door_state=device.door_state,
                auths=auths or 0,
            )
