"""The reconciler: brings each lock to the keys the server wants it to hold.

The key rows are the desired state (see :class:`keyhouse.store.models.SmartlockAuth`). For a
lock, the reconciler repeatedly takes the next key that is not where it should be — tombstones
first, then keys whose ``revision`` is ahead of ``applied_revision`` — reads it *now*, sends it
through the lock's link, and records the outcome guarded by the revision it sent:

* a put of revision r sets ``applied_revision = r`` only where it is still below r, and never
  for a tombstone, so a late answer can't overwrite a newer change; a key changed meanwhile is
  simply sent again on the next turn;
* a confirmed removal deletes the tombstone; a refused one keeps it and tries again later;
* "no" from the lock (e.g. code exists) marks that revision failed, with the lock's reason; it is
  not sent again until the key changes. "Not now" (busy) and an unreachable lock leave the key
  pending and retry with backoff.

No transaction is open while the lock is called. Within one process one reconciler works on a
lock at a time; the outcome writes lock the smartlock row first, like every writer of keys.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import socket
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, case, delete, literal, null, select, update
from sqlalchemy.orm import Session

from keyhouse.devices import drift
from keyhouse.devices.link import (
    WAITING_SECONDS,
    Backoff,
    CreateMarker,
    DeviceRejected,
    DeviceUnreachable,
    NotOnLockYet,
    Placed,
    ResendCreate,
)
from keyhouse.devices.links import Links
from keyhouse.rules.dates import format_api_datetime, utcnow
from keyhouse.rules.ids import new_object_id
from keyhouse.store import audit, leases, repo
from keyhouse.store.database import Database
from keyhouse.store.models import Smartlock, SmartlockAuth, SmartlockLog

log = logging.getLogger(__name__)
# A key as the reconciler reads it (``repo.next_work``): its columns by name, no ORM object.
Key = Row[Any]

# Device errors that mean "not now" rather than "no": the key stays pending and is retried.
RETRYABLE_DEVICE_ERRORS = {"45"}  # BUSY
RETRY_FIRST_SECONDS = 1.0
# The activity log's words for a repair: action 209 "status mismatch", trigger 0 "system".
STATUS_MISMATCH, TRIGGER_SYSTEM = 209, 0
RETRY_MAX_SECONDS = 300.0


def desired_payload(row: SmartlockAuth | Key) -> dict[str, Any]:
    """The key as the lock needs it, from the row as it is now."""

    def date(value: datetime | None) -> str | None:
        return format_api_datetime(value) if value else None

    return {
        "type": row.type,
        "name": row.name,
        "enabled": row.enabled,
        "remoteAllowed": row.remote_allowed,
        "code": row.code,
        "allowedFromDate": date(row.allowed_from_date),
        "allowedUntilDate": date(row.allowed_until_date),
        "allowedWeekDays": row.allowed_week_days,
        "allowedFromTime": row.allowed_from_time,
        "allowedUntilTime": row.allowed_until_time,
    }


def retry_delay(attempts: int) -> timedelta:
    """1 s, 2 s, 4 s … up to 5 min."""
    return timedelta(
        seconds=min(RETRY_FIRST_SECONDS * 2 ** max(attempts - 1, 0), RETRY_MAX_SECONDS)
    )


def owner_name() -> str:
    """This process in the leases it takes: host, process id, and a random part (a process id
    can be reused)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{secrets.token_hex(4)}"


def process_is_gone(owner: str) -> bool:
    """Whether ``owner`` names a process of this machine that no longer runs (False when it
    may still run, or runs elsewhere: then only the lease's expiry frees the lock)."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname()[:32] or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class LeaseBusy(Exception):
    """Another process holds the lock's lease now (it is bringing the lock up to date)."""


class LeaseLost(Exception):
    """This process no longer holds the lock's lease: it stops and records nothing."""


@dataclass
class Lease:
    smartlock_id: int
    epoch: int
    # time.monotonic() when it was last granted or renewed (at the start of that transaction,
    # so the lease is known to last at least lease_seconds from then)
    renewed: float = 0.0


@dataclass
class _After:
    """What a recording transaction found: the lock's next key to bring (None: nothing left,
    or not looked for), and whether it let the lease go (it does when nothing was left)."""

    key: Key | None
    released: bool


class Reconciler:
    """Brings locks to the server's keys: for each lock, one reconciler at a time across all
    processes (a lease), one thread at a time within this process (a guard)."""

    def __init__(
        self,
        db: Database,
        links: Links,
        *,
        owner: str,
        lease_seconds: float = 30.0,
        drift_check_seconds: float = 0.0,
        scan_seconds: float = 5.0,
    ) -> None:
        self.db = db
        # How often the worker asks for locks_with_work (its interval).
        self.scan_seconds = scan_seconds
        self.links = links
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.drift_check_seconds = drift_check_seconds
        self._lock_guards: dict[int, threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()

    def _guard_for(self, smartlock_id: int) -> threading.Lock:
        with self._guard:
            return self._lock_guards[smartlock_id]

    def locks_with_work(self) -> list[int]:
        """Locks with keys to bring to them, and locks due for a drift check."""
        with self.db.read() as session:
            found = repo.locks_with_work(session, utcnow())
            if self.drift_check_seconds > 0:
                found += repo.locks_due_for_check(
                    session, self._checked_before(), self._check_share(session)
                )
        return list(dict.fromkeys(found))

    def _check_share(self, session: Session) -> int:
        """How many drift checks one scan starts: every lock once per interval, spread over
        the interval's scans (locks checked together, e.g. all imported or started at once,
        would otherwise fall due together, every interval, and crowd out the writes)."""
        scans = max(self.drift_check_seconds / self.scan_seconds, 1.0)
        return math.ceil(repo.count_locks(session) / scans) + 1

    def _checked_before(self) -> datetime:
        return utcnow() - timedelta(seconds=self.drift_check_seconds)

    def _check_due(self, smartlock_id: int) -> bool:
        if self.drift_check_seconds <= 0:
            return False
        with self.db.read() as session:
            return repo.check_due(session, smartlock_id, self._checked_before())

    def reconcile(self, smartlock_id: int) -> int:
        """Send the lock what it lacks until nothing is left or the lock can't take more now;
        returns how many keys went through. Does nothing while another process holds the
        lock's lease (it does the work: it lets the lease go only in the transaction that
        finds nothing left, so work committed before that is its own)."""
        done = 0
        with self._guard_for(smartlock_id):
            check = self._check_due(smartlock_id)
            taken = self._acquire_for_work(smartlock_id, check)
            if taken is None:
                return done
            lease, key = taken
            released = False
            try:
                if check:
                    try:
                        done += self._repair(self.links.of(smartlock_id), lease)
                    except DeviceUnreachable as exc:
                        log.info("drift check of lock %s: unreachable (%s)", smartlock_id, exc)
                released, count = self._drain(lease, key)
                done += count
            except LeaseLost:
                log.info("lease on lock %s lost; another process goes on", smartlock_id)
                released = True  # nothing of ours to let go
            finally:
                if not released:
                    self._release(lease)
            return done

    def _acquire_for_work(self, smartlock_id: int, check: bool) -> tuple[Lease, Key | None] | None:
        """The lock's lease and its first key to bring, in one transaction; None when the lease
        is held by another process, or when there is nothing to do (no work, no drift check
        due: then no lease is taken at all)."""
        begin = time.monotonic()

        def work(session: Any) -> tuple[int | None, Key | None] | None:
            key = None
            if not check:
                key = repo.next_work(session, smartlock_id, utcnow())
                if key is None:
                    return None
            return leases.acquire(session, smartlock_id, self.owner, self.lease_seconds), key

        found = self.db.transaction(
            work, what=f"taking the lease on smartlock {smartlock_id}", durable=False
        )
        if found is None:
            return None
        epoch, key = found
        if epoch is None:
            epoch = self._take_from_the_dead(smartlock_id)
            if epoch is None:
                return None
            key = None  # read again under the lease (by the first recording transaction)
        return Lease(smartlock_id, epoch, begin), key

    def _acquire(self, smartlock_id: int) -> Lease | None:
        begin = time.monotonic()
        epoch = self.db.transaction(
            lambda s: leases.acquire(s, smartlock_id, self.owner, self.lease_seconds),
            what=f"taking the lease on smartlock {smartlock_id}",
            durable=False,
        )
        if epoch is None:
            epoch = self._take_from_the_dead(smartlock_id)
        return None if epoch is None else Lease(smartlock_id, epoch, begin)

    def _take_from_the_dead(self, smartlock_id: int) -> int | None:
        """A lease held by a process of this machine that no longer runs (killed, crashed) is
        taken at once rather than after it expires: a restart goes on where the dead one
        stopped. Its epoch still grows, so anything it left in flight stays fenced off."""
        with self.db.read() as session:
            held = leases.holder(session, smartlock_id)
        if held is None or not held[2] or not process_is_gone(held[0]):
            return None
        dead, epoch, _valid = held
        log.info("lease on lock %s held by %s, which is gone: taken over", smartlock_id, dead)
        return self.db.transaction(
            lambda s: leases.take_over(
                s, smartlock_id, dead, epoch, self.owner, self.lease_seconds
            ),
            what=f"taking over the lease on smartlock {smartlock_id}",
            durable=False,
        )

    def _release(self, lease: Lease) -> None:
        self.db.transaction(
            lambda s: leases.release(s, lease.smartlock_id, self.owner, lease.epoch),
            what=f"releasing the lease on smartlock {lease.smartlock_id}",
            durable=False,
        )

    def _renew_before_call(self, lease: Lease, timeout: float) -> None:
        """Renew the lease unless what is left of it outlasts a device call by a margin (every
        recorded outcome renews it too, so a busy lock costs no extra commit per key)."""
        left = self.lease_seconds - (time.monotonic() - lease.renewed)
        if left < timeout + (self.lease_seconds - timeout) / 2:
            self._renew(lease)

    def _renew(self, lease: Lease) -> None:
        begin = time.monotonic()
        held = self.db.transaction(
            lambda s: leases.renew(
                s, lease.smartlock_id, self.owner, lease.epoch, self.lease_seconds
            ),
            what=f"renewing the lease on smartlock {lease.smartlock_id}",
            durable=False,
        )
        if not held:
            raise LeaseLost(lease.smartlock_id)
        lease.renewed = begin

    def _drain(self, lease: Lease, key: Key | None) -> tuple[bool, int]:
        """(whether the lease was let go with nothing left, how many keys went through),
        starting with ``key`` (None: look under the lease). Each recorded outcome reads the
        next key in its own transaction, and lets the lease go there when none is left."""
        done = 0
        if key is None:
            after = self._record(lease, None, ())
            if after.released:
                return True, done
            key = after.key
        while key is not None:
            # The lease outlives the device call (its timeout is shorter than the lease).
            self._renew_before_call(lease, self.links.of(lease.smartlock_id).timeout_seconds)
            after = self._apply(key, lease)
            if after is None:
                return False, done
            done += 1
            if after.released:
                return True, done
            key = after.key
        return False, done  # not reached: a recording transaction without a next key lets go

    def _apply(self, key: Key, lease: Lease) -> _After | None:
        """Bring one key to its lock; what follows, or None when the lock can take nothing
        more now (the lease is still held)."""
        link = self.links.of(key.smartlock_id)
        marks = getattr(link, "marks_creates", False)
        try:
            if key.deleting:
                if marks:
                    link.remove(
                        key.smartlock_id,
                        key.id,
                        key.device_ref,
                        lease.epoch,
                        marker=CreateMarker.read(key.create_marker),
                    )
                else:
                    link.remove(key.smartlock_id, key.id, key.device_ref, lease.epoch)
                return self._removed(key, lease)
            if marks and key.device_ref is None:
                placed = self._create(link, key, lease)
                if placed is None:
                    return None
            else:
                placed = link.put(
                    key.smartlock_id, key.id, desired_payload(key), key.device_ref, lease.epoch
                )
            return self._placed(key, lease, placed.ref, placed.auth_id)
        except NotOnLockYet as exc:
            # The lock's cloud has the key as sent; the lock does not hold it yet.
            return self._accepted(key, lease, exc.ref, str(exc), listed=exc.listed)
        except Backoff as exc:
            # Not now, and the key says why (no working link, the cloud throttles or fails…):
            # retried with backoff.
            self._later(
                key,
                lease,
                str(exc),
                go_on=False,
                at_least=exc.seconds,
                at_most=WAITING_SECONDS if exc.waiting else None,
                unmark=exc.create_unsent,
            )
            return None
        except DeviceUnreachable as exc:
            # Tried again by the worker's scan, and at once when the lock is back.
            log.info("lock %s unreachable: %s", key.smartlock_id, exc)
            return None
        except DeviceRejected as exc:
            reason = f"lock reported: {exc.reason} (device error {exc.code})"
            if exc.code in RETRYABLE_DEVICE_ERRORS:
                self._later(key, lease, None, go_on=False)
                return None
            if key.deleting:  # a tombstone stays one: its removal is tried again later
                return self._later(key, lease, reason)
            return self._refused(key, lease, reason, unmark=exc.create_unsent)

    def _create(self, link: Any, key: Key, lease: Lease) -> Placed | None:
        """A create through a link whose create is not idempotent: the marker (what is sent,
        when) is recorded durably before the first send; a marker left by an earlier attempt
        makes the link look for the key instead of sending (None: the key changed meanwhile,
        try again later)."""
        data = desired_payload(key)
        marker = CreateMarker.read(key.create_marker)
        for _ in range(2):
            if marker is None:
                marker = self._mark(key, lease, link.fingerprint(data))
                if marker is None:
                    return None
            try:
                placed: Placed = link.put(
                    key.smartlock_id, key.id, data, None, lease.epoch, marker=marker
                )
                return placed
            except ResendCreate:
                marker = None  # long sent, still not listed: marked anew, sent again
        raise Backoff("the create could not be marked: trying again later")

    def _mark(self, key: Key, lease: Lease, print_: dict[str, Any]) -> CreateMarker | None:
        """Record "create under way" on the key, durably (SQLite: synchronous=FULL), only
        while the lease is ours (markers are written under the lease alone)."""
        marker = CreateMarker(print_, utcnow(), fresh=True)

        def work(session: Any) -> bool:
            self._holding(session, lease)
            done = session.execute(
                update(SmartlockAuth.__table__)
                .where(SmartlockAuth.id == key.id, SmartlockAuth.device_ref.is_(None))
                .values(create_marker=marker.to_json())
            )
            return bool(done.rowcount)

        marked = self.db.transaction(work, what=f"marking the create of key {key.id}")
        lease.renewed = time.monotonic()
        return marker if marked else None

    def _holding(self, session: Any, lease: Lease) -> None:
        """In a recording transaction: the lock's row first, then the lease, still ours."""
        repo.lock_smartlocks(session, [lease.smartlock_id])
        if not leases.renew(
            session, lease.smartlock_id, self.owner, lease.epoch, self.lease_seconds
        ):
            raise LeaseLost(lease.smartlock_id)

    def _record(
        self,
        lease: Lease,
        key: Key | None,
        changes: tuple[tuple[dict[str, Any], tuple[Any, ...]], ...],
        *,
        remove: bool = False,
        go_on: bool = True,
        what: str = "",
    ) -> _After:
        """One transaction: the lock's row first; the outcome for ``key`` (each (values,
        conditions) one guarded UPDATE of it; ``remove``: delete the tombstone); then, with
        ``go_on``, the lock's next key to bring, or, when none is left, the lease let go
        (atomically with finding nothing: work committed later finds the lease free). Every
        write is guarded by the lease, still ours; else LeaseLost and nothing is recorded."""
        smartlock_id = lease.smartlock_id

        def work(session: Any) -> _After:
            repo.lock_smartlocks(session, [smartlock_id])
            if key is not None:
                if remove:
                    session.execute(
                        delete(SmartlockAuth.__table__).where(
                            SmartlockAuth.id == key.id, SmartlockAuth.deleting.is_(True)
                        )
                    )
                for values, conditions in changes:
                    session.execute(
                        update(SmartlockAuth.__table__)
                        .where(SmartlockAuth.id == key.id, *conditions)
                        .values(**values)
                    )
                repo.bump_keys_version(session, smartlock_id)
            following = repo.next_work(session, smartlock_id, utcnow()) if go_on else None
            if go_on and following is None:
                held = leases.let_go(session, smartlock_id, self.owner, lease.epoch)
            else:
                held = leases.renew(
                    session, smartlock_id, self.owner, lease.epoch, self.lease_seconds
                )
            if not held:
                raise LeaseLost(smartlock_id)
            return _After(following, go_on and following is None)

        begin = time.monotonic()
        # Bookkeeping (durable=False): lost at a power cut, the key is only sent again.
        after = self.db.transaction(
            work, what=what or f"recording the keys of smartlock {smartlock_id}", durable=False
        )
        lease.renewed = begin
        return after

    def _placed(self, key: Key, lease: Lease, ref: str, auth_id: int | None) -> _After:
        # Where the key is on the lock is recorded whatever happened meanwhile (a tombstone's
        # removal needs it); the revision only where it is news and the key is still live.
        # One UPDATE: the revision's columns change only where ``news`` holds.
        news = and_(
            SmartlockAuth.applied_revision < key.revision, SmartlockAuth.deleting.is_(False)
        )
        columns = SmartlockAuth.__table__.c

        def if_news(column: Any, value: Any) -> Any:
            then = null() if value is None else literal(value, column.type)
            return case((news, then), else_=column)

        return self._record(
            lease,
            key,
            (
                (
                    {
                        "device_ref": ref,
                        "auth_id": auth_id,
                        "create_marker": None,
                        "accepted_revision": if_news(columns.accepted_revision, key.revision),
                        "applied_revision": if_news(columns.applied_revision, key.revision),
                        "error": if_news(columns.error, None),
                        "retry_at": if_news(columns.retry_at, None),
                        "attempts": if_news(columns.attempts, 0),
                        "verified_at": if_news(columns.verified_at, utcnow()),
                    },
                    (),
                ),
            ),
            what=f"recording key {key.id}",
        )

    def _accepted(self, key: Key, lease: Lease, ref: str, reason: str, *, listed: bool) -> _After:
        """The lock's cloud took this revision (``listed``: lists it as sent); the lock does
        not hold it yet. Where the key is there is recorded (and the create's marker goes);
        the key stays pending, showing ``reason``, and is looked at again after a backoff."""
        attempts = key.attempts + 1
        values: dict[str, Any] = {
            "error": reason,
            "attempts": attempts,
            "retry_at": utcnow() + retry_delay(attempts),
        }
        if listed:
            columns = SmartlockAuth.__table__.c
            values["accepted_revision"] = case(
                (columns.accepted_revision < key.revision, literal(key.revision)),
                else_=columns.accepted_revision,
            )
        return self._record(
            lease,
            key,
            (
                ({"device_ref": ref, "create_marker": None}, ()),
                (values, (SmartlockAuth.revision == key.revision,)),
            ),
            what=f"recording key {key.id}",
        )

    def _removed(self, key: Key, lease: Lease) -> _After:
        return self._record(lease, key, (), remove=True, what=f"removing key {key.id}")

    def _refused(self, key: Key, lease: Lease, reason: str, *, unmark: bool = False) -> _After:
        log.info("lock %s refused key %s: %s", key.smartlock_id, key.id, reason)
        return self._record(
            lease,
            key,
            (
                (
                    {"failed_revision": key.revision, "error": reason, "retry_at": None},
                    (SmartlockAuth.revision == key.revision, SmartlockAuth.deleting.is_(False)),
                ),
                *self._unmarking(key, unmark),
            ),
            what=f"recording key {key.id}",
        )

    @staticmethod
    def _unmarking(key: Key, unmark: bool) -> tuple[tuple[dict[str, Any], tuple[Any, ...]], ...]:
        """The change that drops a create's marker when the create was certainly not made
        (the marker is this lease holder's: markers are written under the lease alone)."""
        if not unmark or key.device_ref is not None:
            return ()
        return (({"create_marker": None}, (SmartlockAuth.device_ref.is_(None),)),)

    def _later(
        self,
        key: Key,
        lease: Lease,
        reason: str | None,
        *,
        go_on: bool = True,
        at_least: float = 0.0,
        at_most: float | None = None,
        unmark: bool = False,
    ) -> _After:
        """Not now: try this key again after a backoff (it stays pending or deleting), growing
        up to ``at_most`` seconds when given (``at_least`` wins over it)."""
        attempts = key.attempts + 1
        delay = retry_delay(attempts)
        if at_most is not None:
            delay = min(delay, timedelta(seconds=at_most))
        delay = max(delay, timedelta(seconds=at_least))
        values: dict[str, Any] = {"attempts": attempts, "retry_at": utcnow() + delay}
        if reason is not None:
            values["error"] = reason
        return self._record(
            lease,
            key,
            ((values, (SmartlockAuth.revision == key.revision,)), *self._unmarking(key, unmark)),
            go_on=go_on,
            what=f"recording key {key.id}",
        )

    # --- drift repair ----------------------------------------------------------------------------

    def repair(self, smartlock_id: int) -> int:
        """Read what the lock holds and make it match: keys missing or different on the lock go
        again (pending until it confirms), keys the server does not know are handled by the
        link's policy. Raises DeviceUnreachable. Returns how many keys were out of step."""
        link = self.links.of(smartlock_id)
        with self._guard_for(smartlock_id):
            lease = self._acquire(smartlock_id)
            if lease is None:
                raise LeaseBusy(smartlock_id)
            try:
                return self._repair(link, lease)
            finally:
                self._release(lease)

    def _repair(self, link: Any, lease: Lease) -> int:
        """Compare what the lock holds with the keys and set right what differs (under the
        lease); the repair is an entry in the lock's activity log."""
        if link.unknown_keys == "adopt":
            return self._settle_drift(link, lease)
        smartlock_id = lease.smartlock_id
        held = link.read_all(smartlock_id)
        by_key = {entry.get("keyId"): ref for ref, entry in held.items()}

        def work(session: Any) -> tuple[int, set[str], set[str]]:
            self._holding(session, lease)
            keys = session.scalars(
                select(SmartlockAuth).where(SmartlockAuth.smartlock_id == smartlock_id)
            ).all()
            now = utcnow()
            found = 0
            for key in keys:
                if key.sync_state != "applied":
                    continue  # the reconciler is on it already
                ref = by_key.get(key.id, key.device_ref)
                on_lock = held.get(ref) if ref is not None else None
                wanted = desired_payload(key)
                if on_lock is None or {k: on_lock.get(k) for k in wanted} != wanted:
                    repo.mark_changed(session, key)  # pending until the lock has it again
                    found += 1
                else:
                    key.verified_at = now
            repo.mark_checked(session, smartlock_id, now)
            ids = {key.id for key in keys}
            refs = {key.device_ref for key in keys if key.device_ref is not None}
            return found, ids, refs

        rewritten, ids, refs = self.db.transaction(work, what=f"checking smartlock {smartlock_id}")
        removed = 0
        if link.unknown_keys == "remove":
            for ref, entry in held.items():
                if entry.get("keyId") not in ids and ref not in refs:
                    link.remove(smartlock_id, str(entry.get("keyId") or ""), ref, lease.epoch)
                    removed += 1
        if rewritten or removed:
            words = []
            if rewritten:
                words.append(f"{rewritten} key(s) missing or different on the lock written again")
            if removed:
                words.append(f"{removed} key(s) the server does not know removed from the lock")
            counts = {"rewritten": rewritten, "removed": removed}
            self._log_repair(smartlock_id, counts, words)
        return rewritten + removed

    def _settle_drift(self, link: Any, lease: Lease) -> int:
        """The drift check of a lock whose keys live in someone else's system too (a link that
        adopts unknown keys): the safer state wins (``rules.drift``), the owner is told in the
        audit log and the lock's activity log. Read and write are one transaction holding the
        lock's row and the lease, so a change made in Keyhouse meanwhile is never overwritten
        (it made the key pending, and pending keys are not judged). Returns how many keys
        changed in Keyhouse or go to the upstream again."""
        smartlock_id = lease.smartlock_id
        held = link.read_all(smartlock_id)

        def work(session: Any) -> dict[str, int]:
            self._holding(session, lease)
            return drift.settle(session, smartlock_id, held, utcnow(), desired_payload)

        counts = self.db.transaction(work, what=f"checking smartlock {smartlock_id}")
        if any(counts.values()):
            self._log_repair(smartlock_id, counts, drift.words(counts))
        return sum(counts.values())

    def _log_repair(self, smartlock_id: int, counts: dict[str, int], words: list[str]) -> None:
        text = "Keyhouse drift repair: " + "; ".join(words)
        log.info("smartlock %s: %s", smartlock_id, text)

        def work(session: Any) -> None:
            lock = session.get(Smartlock, smartlock_id)
            if lock is None:
                return
            session.add(
                SmartlockLog(
                    id=new_object_id(),
                    account_id=lock.account_id,
                    smartlock_id=lock.id,
                    device_type=lock.type,
                    name=text[:200],
                    action=STATUS_MISMATCH,
                    trigger=TRIGGER_SYSTEM,
                    state=0,
                    date=utcnow(),
                )
            )
            # Only when something was out of step (never on the reconciler's usual path).
            audit.add(
                session,
                account_id=lock.account_id,
                actor=audit.SYSTEM,
                action="lock.repair",
                target_type="lock",
                target_id=str(lock.id),
                smartlock_id=lock.id,
                after=counts,
            )

        self.db.transaction(work, what=f"logging the repair of smartlock {smartlock_id}")
