"""The DeviceLink interface: everything the server may ask of a lock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


class DeviceUnreachable(Exception):
    """The lock cannot be reached now; the operation stays queued and is tried again."""


class DeviceRejected(Exception):
    """The lock refused the operation; ``code`` is Nuki's device error code (hex)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


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


class DeviceLink(Protocol):
    """One lock's link. Calls are idempotent per ``auth_key`` so a retried operation is safe."""

    def put_auth(self, smartlock_id: int, auth_key: str, data: dict[str, Any]) -> int:
        """Create or replace the authorization ``auth_key``; return its slot (``authId``)."""
        ...

    def remove_auth(self, smartlock_id: int, auth_key: str) -> None:
        """Remove the authorization ``auth_key``; removing an absent one is not an error."""
        ...

    def action(
        self, smartlock_id: int, action: int, option: int, trigger: int, device_type: int
    ) -> DoorEvent:
        """Lock, unlock, unlatch…; raises DeviceUnreachable or DeviceRejected."""
        ...

    def auth_keys(self, smartlock_id: int) -> dict[str, dict[str, Any]]:
        """The authorizations the lock holds now, by key id (for a full sync)."""
        ...
