"""The DeviceLink interface: everything the server may ask of a lock."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from keyhouse.rules.dates import format_api_datetime, parse_api_datetime


class DeviceUnreachable(Exception):
    """The lock cannot be reached now; the operation stays queued and is tried again."""


class StaleLease(DeviceUnreachable):
    """The lock has had a change from a newer lease holder: this caller must stop."""


# How long a key waiting on the upstream (a create or removal Nuki has not listed yet) waits
# at most between two looks: waiting is not failing, so the backoff stops growing there.
WAITING_SECONDS = 10.0


class Backoff(DeviceUnreachable):
    """Not now: the key waits showing this reason, and is tried again after the reconciler's
    backoff, or ``seconds`` if longer. ``create_unsent``: a create was certainly not made (its
    marker can go). ``waiting``: nothing failed, the upstream is still working on it; the
    backoff grows no longer than ``WAITING_SECONDS``."""

    def __init__(
        self,
        reason: str,
        seconds: float = 0.0,
        *,
        create_unsent: bool = False,
        waiting: bool = False,
    ) -> None:
        super().__init__(reason)
        self.seconds = seconds
        self.create_unsent = create_unsent
        self.waiting = waiting


class NotDriven(Backoff):
    """The lock has no working link in Keyhouse (yet): its keys wait, showing this reason."""


class NotOnLockYet(DeviceUnreachable):
    """The lock's cloud has the key as sent (``ref``: its id there), the lock does not hold it
    yet: the key stays pending, showing ``reason``, and is looked at again later. ``listed``:
    the cloud lists the key as sent (False: it took the change, and does not list it yet)."""

    def __init__(self, reason: str, ref: str, *, listed: bool = True) -> None:
        super().__init__(reason)
        self.ref = ref
        self.listed = listed


class ResendCreate(Exception):
    """A create sent long ago is still not found: the reconciler marks a new one, then sends."""


@dataclass(frozen=True)
class CreateMarker:
    """A create under way at a cloud (the key row's ``create_marker``): what was sent, which
    identifies the key there (its fingerprint), and when. ``fresh``: marked for this very
    attempt (send it); otherwise an earlier attempt may have landed (look for it first)."""

    fingerprint: dict[str, Any]
    sent_at: datetime
    fresh: bool

    def to_json(self) -> str:
        return json.dumps(
            {"fingerprint": self.fingerprint, "sentAt": format_api_datetime(self.sent_at)}
        )

    @classmethod
    def read(cls, text: str | None) -> CreateMarker | None:
        """The stored marker (never fresh: an earlier attempt wrote it), or None."""
        if not text:
            return None
        try:
            value = json.loads(text)
            return cls(
                dict(value["fingerprint"]),
                parse_api_datetime(value["sentAt"], "sentAt"),
                fresh=False,
            )
        except Exception:  # unreadable: a create that may have landed long ago
            return cls({}, datetime.fromtimestamp(0, UTC), fresh=False)


class DeviceRejected(Exception):
    """The lock refused the operation; ``code`` is Nuki's device error code (hex), or the
    cloud's HTTP status. ``create_unsent``: a create was certainly not made."""

    def __init__(self, code: str, reason: str, *, create_unsent: bool = False) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.create_unsent = create_unsent


@dataclass(frozen=True)
class DoorEvent:
    """What the lock reports after something happened at the door (becomes a log entry)."""

    action: int  # 1 unlock, 2 lock, 3 unlatch, 4 lock 'n' go, 5 lock 'n' go with unlatch
    trigger: int  # 0 system, 1 manual, 2 button, 4 web, 5 app, 255 keypad
    state: int  # 0 success, 1 motor blocked, 4 busy, 9 rejected
    opened: bool
    reason: str
    auth_key: str | None = None
    slot: int | None = None
    name: str = ""
    source: int = 0  # 0 default, 1 keypad code
    error: str | None = None


@dataclass(frozen=True)
class Placed:
    """Where a put landed: the link's own reference for the key, and the official ``authId``."""

    ref: str
    auth_id: int | None = None


@dataclass(frozen=True)
class ActionAccepted:
    """The lock (or its cloud) took the action; its outcome is not known yet."""

    reason: str = "accepted; the lock reports the outcome later"


class DeviceLink(Protocol):
    """What the server may ask of a lock. One link per kind of lock (virtual, cloud, MQTT); the
    reconciler chooses it per lock (:class:`keyhouse.devices.links.Links`).

    Every call gives up within ``timeout_seconds`` (raising :class:`DeviceUnreachable`).
    ``put`` and ``remove`` are idempotent for one key: sending the same key again is harmless.
    ``key_id`` is the server's id of the key; a link that can't store it on the lock finds the
    key by ``ref`` (what ``put`` returned) or by the key's data.
    """

    timeout_seconds: float
    # A link whose create is not idempotent (a cloud: PUT answers no id) sets ``marks_creates``
    # and takes ``marker=`` (a :class:`CreateMarker`) in ``put`` and ``remove`` of a key it has
    # no ``ref`` for; the reconciler records the marker durably before the first send. It also
    # has ``fingerprint(data)``: what identifies the key once created. Others omit all this.
    # What the reconciler does with keys the lock holds and the server does not know:
    # "remove" them (the simulator), or "adopt" them (a cloud link, later).
    unknown_keys: str

    def put(
        self, smartlock_id: int, key_id: str, data: dict[str, Any], ref: str | None, fence: int
    ) -> Placed:
        """Make the lock hold ``data`` for the key (create or replace). ``fence`` is the
        caller's lease epoch: a link that can, refuses a lower one than it has seen
        (:class:`StaleLease`)."""
        ...

    def remove(self, smartlock_id: int, key_id: str, ref: str | None, fence: int) -> None:
        """Remove the key from the lock; removing an absent one is not an error."""
        ...

    def read_all(self, smartlock_id: int) -> dict[str, dict[str, Any]]:
        """What the lock holds now, by reference; each entry's ``keyId`` names the server's key
        where the lock knows it."""
        ...

    def act(
        self, smartlock_id: int, action: int, option: int, trigger: int, device_type: int
    ) -> DoorEvent | ActionAccepted:
        """Lock, unlock, unlatch…; raises DeviceUnreachable or DeviceRejected."""
        ...
