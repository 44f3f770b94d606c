"""At the door: lock actions through the API, and a person's keypad code, app key or button.

The lock decides (with its own copy of each key); the server records what it reports in the
activity log and counts the key's use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TypeVar

from sqlalchemy import update
from sqlalchemy.orm import Session

from keyhouse.devices.link import (
    ActionAccepted,
    Backoff,
    DeviceRejected,
    DeviceUnreachable,
    DoorEvent,
    NotDriven,
)
from keyhouse.devices.sync import LeaseBusy
from keyhouse.errors import Conflict, DeviceError, Locked, LockOffline, ValidationFailed
from keyhouse.rules.actions import ACTIONS_BY_TYPE
from keyhouse.rules.dates import utcnow
from keyhouse.rules.ids import new_object_id
from keyhouse.runtime import Runtime
from keyhouse.services.caller import Caller
from keyhouse.services.lookup import lock_not_found
from keyhouse.store import repo
from keyhouse.store.models import Account, Smartlock, SmartlockAuth, SmartlockLog

T = TypeVar("T")
log = logging.getLogger(__name__)
TRIGGER_WEB = 4
BUSY_RETRY_SECONDS = 2
ACTION_NAMES = {
    1: "unlock",
    2: "lock",
    3: "unlatch",
    4: "lock 'n' go",
    5: "lock 'n' go with unlatch",
}


def lock_of(runtime: Runtime, caller: Caller, smartlock_id: int, status: int = 404) -> Smartlock:
    """The caller's lock, or the 404 (403 where Nuki answers 403) that names the id."""
    with runtime.db.read() as session:
        lock = repo.lock(session, caller.account_id, smartlock_id)
        if lock is None:
            raise lock_not_found(smartlock_id, status=status)
        return lock


def virtual_lock_of(runtime: Runtime, caller: Caller, smartlock_id: int) -> Smartlock:
    """The caller's lock if it is a virtual one (the emulator's); a real one is a 409."""
    lock = lock_of(runtime, caller, smartlock_id)
    if lock.link != "virtual":
        raise Conflict(
            f"smartlock {lock.id} ({lock.name!r}) is a real lock (of a linked Nuki Web "
            "account), not a virtual one: the emulator controls virtual locks only",
            field="smartlockId",
            rule="virtual_lock",
        )
    return lock


@contextmanager
def action_slot(runtime: Runtime, lock: Smartlock) -> Iterator[None]:
    """A place among the lock's actions in flight, or 423 at once: a slow lock never holds
    more than a few request threads, which other tenants need."""
    if not runtime.actions_in_flight.take(lock.id):
        raise Locked(
            f"smartlock {lock.id} ({lock.name!r}) has {runtime.actions_in_flight.cap} actions "
            f"in progress already: try again in {BUSY_RETRY_SECONDS} s",
            field="smartlockId",
            rule="actions_in_flight",
            headers={"Retry-After": str(BUSY_RETRY_SECONDS)},
        )
    try:
        yield
    finally:
        runtime.actions_in_flight.give_back(lock.id)


def _reach(lock: Smartlock, call: Callable[[], T]) -> T:
    try:
        return call()
    except NotDriven as exc:
        raise LockOffline(f"{exc}; no action is sent to it", field="smartlockId") from None
    except Backoff as exc:
        raise LockOffline(
            f"smartlock {lock.id} ({lock.name!r}) can't be reached now: {exc}",
            field="smartlockId",
        ) from None
    except DeviceUnreachable:
        raise LockOffline(
            f"smartlock {lock.id} ({lock.name!r}) is offline (serverState 4): the lock can't "
            "be reached now; try again when it is back online",
            field="smartlockId",
        ) from None
    except DeviceRejected as exc:
        raise DeviceError(
            f"smartlock {lock.id} ({lock.name!r}) refused: {exc.reason} (device error {exc.code})",
            field="smartlockId",
        ) from None


def record(
    runtime: Runtime, lock: Smartlock, event: DoorEvent, at: datetime, name: str = ""
) -> str:
    """Write the log entry for ``event``; a successful use counts on its key."""
    log_id = new_object_id(at)

    def work(session: Session) -> None:
        repo.lock_smartlocks(session, [lock.id])  # before the key row: the writers' one order
        user_id = None
        if event.auth_key is not None:
            key = session.get(SmartlockAuth, event.auth_key)
            if key is not None and key.account_id == lock.account_id:
                user_id = key.account_user_id
                if event.state == 0:
                    session.execute(
                        update(SmartlockAuth)
                        .where(SmartlockAuth.id == key.id)
                        .values(lock_count=SmartlockAuth.lock_count + 1, last_active_date=at)
                    )
                    repo.bump_keys_version(session, lock.id)
        session.add(
            SmartlockLog(
                id=log_id,
                account_id=lock.account_id,
                smartlock_id=lock.id,
                device_type=lock.type,
                auth_key=event.auth_key,
                auth_id=event.slot,
                account_user_id=user_id,
                name=event.name or name,
                action=event.action,
                trigger=event.trigger,
                state=event.state,
                source=event.source,
                date=at,
                error=event.error,
            )
        )

    runtime.db.transaction(work, what="recording what happened at the door")
    return log_id


def pull_after_action(runtime: Runtime, lock: Smartlock) -> None:
    """An action a lock's cloud accepted: its state and log are pulled now, not at the next
    interval. The action is done already: a failure here is only logged."""
    try:
        runtime.upstream_sync.after_action(lock.account_id)
    except Exception:
        log.warning("could not ask for the pull of account %s after an action", lock.account_id)


def check_action(lock: Smartlock, action: int, option: int) -> None:
    allowed = ACTIONS_BY_TYPE.get(lock.type, set())
    if action not in allowed:
        raise ValidationFailed(
            f"action {action} is not one smartlock {lock.id} (type {lock.type}) knows: use one "
            f"of {sorted(allowed)} (1 unlock, 2 lock, 3 unlatch, 4 lock 'n' go, 5 lock 'n' go "
            "with unlatch)",
            field="action",
            rule="enum",
        )
    if not 0 <= option <= 7:
        raise ValidationFailed(
            f"option {option} is not an option mask: use 0 (none), 2 (force), 4 (full lock) "
            "or their sum",
            field="option",
            rule="range",
        )


def lock_action(
    runtime: Runtime, caller: Caller, smartlock_id: int, action: int, option: int
) -> None:
    """POST /smartlock/{id}/action: the lock moves now, or the answer says why not."""
    lock = lock_of(runtime, caller, smartlock_id, status=404)
    check_action(lock, action, option)
    link = runtime.links.of(lock.id)
    with action_slot(runtime, lock):
        event = _reach(lock, lambda: link.act(lock.id, action, option, TRIGGER_WEB, lock.type))
    if isinstance(event, ActionAccepted):
        pull_after_action(runtime, lock)  # the lock's outcome and log entry come from there
        return
    with runtime.db.read() as session:
        account = session.get(Account, caller.account_id)
        name = account.name if account else ""
    record(runtime, lock, event, utcnow(), name=name)
    if event.state == 4:
        raise Locked(
            f"smartlock {lock.id} ({lock.name!r}) is busy: try again in {BUSY_RETRY_SECONDS} s",
            headers={"Retry-After": str(BUSY_RETRY_SECONDS)},
        )
    if event.error:
        raise DeviceError(
            f"smartlock {lock.id} ({lock.name!r}) could not {ACTION_NAMES.get(action, 'act')}: "
            f"{event.reason}",
            field="action",
        )


def at_the_door(
    runtime: Runtime,
    caller: Caller,
    smartlock_id: int,
    at: datetime | None,
    attempt: Callable[[Smartlock, datetime], DoorEvent],
) -> tuple[DoorEvent, str]:
    """A person's attempt at a virtual lock (the emulator's keypad, app key, button): decided
    by the lock, always logged."""
    lock = virtual_lock_of(runtime, caller, smartlock_id)
    when = at or utcnow()
    with action_slot(runtime, lock):
        event = _reach(lock, lambda: attempt(lock, when))
    return event, record(runtime, lock, event, when)


def keypad_entry(
    runtime: Runtime, caller: Caller, smartlock_id: int, code: int, at: datetime | None
) -> tuple[DoorEvent, str]:
    return at_the_door(
        runtime,
        caller,
        smartlock_id,
        at,
        lambda lock, when: runtime.link.enter_code(lock.id, code, when, lock.timezone, lock.type),
    )


def app_key_use(
    runtime: Runtime,
    caller: Caller,
    smartlock_id: int,
    slot: int,
    action: int,
    remote: bool,
    at: datetime | None,
) -> tuple[DoorEvent, str]:
    lock = virtual_lock_of(runtime, caller, smartlock_id)
    check_action(lock, action, 0)
    return at_the_door(
        runtime,
        caller,
        smartlock_id,
        at,
        lambda lock, when: runtime.link.use_app_key(
            lock.id, slot, action, when, lock.timezone, remote=remote, device_type=lock.type
        ),
    )


def button(runtime: Runtime, caller: Caller, smartlock_id: int) -> tuple[DoorEvent, str]:
    return at_the_door(
        runtime,
        caller,
        smartlock_id,
        None,
        lambda lock, _when: runtime.link.press_button(lock.id, lock.type),
    )


def sync_lock(runtime: Runtime, caller: Caller, smartlock_id: int) -> int:
    """Read what the lock holds and make it match the server: returns how many keys were out
    of step (they go to the lock again; keys it holds that the server does not know go, or,
    on a lock of an upstream account, are listed: see ``devices.drift``)."""
    lock = lock_of(runtime, caller, smartlock_id, status=404)
    try:
        drift = runtime.reconciler.repair(lock.id)
    except LeaseBusy:
        raise Locked(
            f"smartlock {lock.id} ({lock.name!r}) is being brought up to date by another "
            "Keyhouse process: try again in a moment",
            field="smartlockId",
            headers={"Retry-After": "1"},
        ) from None
    except NotDriven as exc:
        raise LockOffline(f"{exc}; it can't be synced", field="smartlockId") from None
    except DeviceUnreachable:
        raise LockOffline(
            f"smartlock {lock.id} ({lock.name!r}) is offline (serverState 4): it can't be "
            "synced now; its keys go to it when it is back",
            field="smartlockId",
        ) from None
    runtime.after_commit([lock.id])
    return drift
