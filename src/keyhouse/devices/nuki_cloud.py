"""Locks of a linked Nuki Web account, behind the DeviceLink interface.

For now a placeholder: Keyhouse does not drive them yet, and every call says so (the
reconciler leaves their keys pending with that reason). The link that drives them through
``keyhouse.devices.nuki_api`` comes next (see docs/nuki-cloud.md).
"""

from __future__ import annotations

from typing import Any

from keyhouse.devices.link import ActionAccepted, DoorEvent, NotDriven, Placed

NOT_DRIVEN_YET = (
    "smartlock {id} is a lock of a linked Nuki Web account: Keyhouse does not send keys to "
    "Nuki's cloud yet, so this key waits (it is not on the lock)"
)


class NotYetDrivenLink:
    """The link of locks imported from Nuki's cloud until Keyhouse drives them: every call
    says so, and the reconciler leaves their keys pending with that reason."""

    unknown_keys = "adopt"

    def __init__(self, timeout_seconds: float = 10.0) -> None:
        self.timeout_seconds = timeout_seconds

    def _no(self, smartlock_id: int) -> NotDriven:
        return NotDriven(NOT_DRIVEN_YET.format(id=smartlock_id))

    def put(
        self, smartlock_id: int, key_id: str, data: dict[str, Any], ref: str | None, fence: int
    ) -> Placed:
        raise self._no(smartlock_id)

    def remove(self, smartlock_id: int, key_id: str, ref: str | None, fence: int) -> None:
        raise self._no(smartlock_id)

    def read_all(self, smartlock_id: int) -> dict[str, dict[str, Any]]:
        raise self._no(smartlock_id)

    def act(
        self, smartlock_id: int, action: int, option: int, trigger: int, device_type: int
    ) -> DoorEvent | ActionAccepted:
        raise self._no(smartlock_id)
