"""Pure rules for a linked Nuki Web account: reading its lock list and its activity log,
planning a refresh."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from keyhouse.rules.dates import parse_api_datetime
from keyhouse.rules.ids import is_object_id
from keyhouse.rules.timezones import NUKI_TIMEZONES
from keyhouse.rules.violations import RuleViolation

SMARTLOCK_ID_MAX = 2**63 - 1
LOCK_NAME_MAX = 200
DEFAULT_TIMEZONE = "Europe/Vienna"
KNOWN_TYPES = frozenset({0, 1, 2, 3, 4})


@dataclass(frozen=True)
class UpstreamLockInfo:
    """One lock as the upstream's ``GET /smartlock`` lists it, checked."""

    smartlock_id: int
    type: int
    name: str
    timezone: str
    keypad: bool
    server_state: int
    config: dict[str, Any] | None
    state: dict[str, Any] | None

    @property
    def nuki_id(self) -> str:
        """The 8-hex Nuki id: the smartlockId's lower 32 bits (its type is the rest)."""
        return f"{self.smartlock_id & 0xFFFFFFFF:08X}"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def timezone_of(config: Mapping[str, Any] | None) -> str:
    """The IANA zone of Nuki's ``config.timezoneId`` (an index into Nuki's list)."""
    index = _int((config or {}).get("timezoneId"))
    if index is not None and 0 <= index < len(NUKI_TIMEZONES):
        return NUKI_TIMEZONES[index]
    return DEFAULT_TIMEZONE


def parse_locks(payload: Any) -> list[UpstreamLockInfo]:
    """The upstream's lock list, or ValueError with a sentence naming what is wrong.

    The upstream is not trusted: every lock needs a smartlockId (a 63-bit number) and a type
    Nuki documents; a name is cut to what Keyhouse stores; a smartlockId twice is refused.
    """
    if not isinstance(payload, list):
        raise ValueError("the upstream's GET /smartlock did not answer a list of locks")
    found: dict[int, UpstreamLockInfo] = {}
    for index, item in enumerate(payload):
        if not isinstance(item, dict):
            raise ValueError(f"lock {index} of the upstream's list is not an object")
        lock_id = _int(item.get("smartlockId"))
        if lock_id is None or not 0 < lock_id <= SMARTLOCK_ID_MAX:
            raise ValueError(
                f"lock {index} of the upstream's list has no valid smartlockId "
                f"({item.get('smartlockId')!r})"
            )
        if lock_id in found:
            raise ValueError(f"the upstream lists smartlock {lock_id} twice")
        lock_type = _int(item.get("type"))
        if lock_type not in KNOWN_TYPES:
            raise ValueError(
                f"smartlock {lock_id} of the upstream has type {item.get('type')!r}, not one "
                "of Nuki's lock types 0-4"
            )
        config = item.get("config") if isinstance(item.get("config"), dict) else None
        state = item.get("state") if isinstance(item.get("state"), dict) else None
        name = item.get("name") if isinstance(item.get("name"), str) else ""
        name = name.strip()[:LOCK_NAME_MAX] or f"Nuki {lock_id & 0xFFFFFFFF:08X}"
        server_state = _int(item.get("serverState"))
        found[lock_id] = UpstreamLockInfo(
            smartlock_id=lock_id,
            type=lock_type,
            name=name,
            timezone=timezone_of(config),
            keypad=bool(config and (config.get("keypadPaired") or config.get("keypad2Paired"))),
            server_state=server_state if server_state is not None else 0,
            config=config,
            state=state,
        )
    return list(found.values())


@dataclass(frozen=True)
class ImportPlan:
    added: list[int]
    refreshed: list[int]
    removed: list[int]  # imported before, no longer listed upstream (marked, not deleted)
    conflicts: dict[int, int]  # smartlockId -> the other account that holds it


def plan_import(
    account_id: int,
    upstream: Iterable[int],
    holders: Mapping[int, tuple[int, str]],
    imported_before: Iterable[int],
) -> ImportPlan:
    """What a (re)link does. ``holders``: each listed smartlockId Keyhouse already has, with its
    (account, link kind). A lock of another account, or a virtual one of this account, is a
    conflict: a smartlockId is one lock across Keyhouse."""
    listed = list(dict.fromkeys(upstream))
    conflicts = {
        lock_id: holders[lock_id][0]
        for lock_id in listed
        if lock_id in holders
        and (holders[lock_id][0] != account_id or holders[lock_id][1] != "nuki")
    }
    added = [lock_id for lock_id in listed if lock_id not in holders]
    refreshed = [lock_id for lock_id in listed if lock_id in holders and lock_id not in conflicts]
    gone = sorted(set(imported_before) - set(listed))
    return ImportPlan(added=added, refreshed=refreshed, removed=gone, conflicts=conflicts)


LOG_NAME_MAX = 200
LOG_ERROR_MAX = 1000


# The ``error`` of the entry Keyhouse writes when the guest page's Open went through Nuki's
# cloud, before Nuki's log has the unlock: the next pull puts Nuki's entry in its place.
SENT_UPSTREAM = (
    "unlock sent through Nuki's cloud, which accepted it; the lock's own outcome comes in "
    "Nuki's log"
)
# How far apart Keyhouse's entry and Nuki's entry of one Open may be (Nuki's clock, queue).
SENT_MATCH_SECONDS = 120


@dataclass(frozen=True)
class UpstreamLogEntry:
    """One entry of the upstream's ``GET /smartlock/log``, checked (official SmartlockLog)."""

    id: str  # a 24-hex ObjectId: Keyhouse keeps it as its own entry's id
    smartlock_id: int
    auth_id: str | None  # the upstream's id of the key used
    name: str
    action: int
    trigger: int
    state: int
    auto_unlock: bool
    date: datetime
    source: int | None
    error: str | None


def _small(value: Any) -> int | None:
    number = _int(value)
    return number if number is not None and 0 <= number <= 255 else None


def parse_log_entry(item: Any) -> UpstreamLogEntry | None:
    """An entry of the upstream's log, or None when it is not one Keyhouse can keep (no
    ObjectId, no smartlockId, no action, trigger, state or date): the upstream is not trusted,
    and one odd entry must not stop the others."""
    if not isinstance(item, dict) or not is_object_id(item.get("id")):
        return None
    lock_id = _int(item.get("smartlockId"))
    action, trigger, state = (_small(item.get(k)) for k in ("action", "trigger", "state"))
    if lock_id is None or not 0 < lock_id <= SMARTLOCK_ID_MAX or None in (action, trigger, state):
        return None
    try:
        date = parse_api_datetime(item.get("date"), "date")
    except RuleViolation:
        return None
    auth_id = item.get("authId")
    name = item.get("name")
    error = item.get("error")
    return UpstreamLogEntry(
        id=item["id"].lower(),
        smartlock_id=lock_id,
        auth_id=auth_id.lower() if is_object_id(auth_id) else None,
        name=name[:LOG_NAME_MAX] if isinstance(name, str) else "",
        action=action,  # type: ignore[arg-type]
        trigger=trigger,  # type: ignore[arg-type]
        state=state,  # type: ignore[arg-type]
        auto_unlock=item.get("autoUnlock") is True,
        date=date,
        source=_int(item.get("source")),
        error=error[:LOG_ERROR_MAX] if isinstance(error, str) and error else None,
    )


def parse_log_page(payload: Any) -> tuple[list[UpstreamLogEntry], str | None, int]:
    """A page of the upstream's log: the entries Keyhouse can keep (newest first, as sent),
    the id to ask for older ones with (the page's last entry's), and how many it held.
    ValueError if it is not a list."""
    if not isinstance(payload, list):
        raise ValueError("the upstream's GET /smartlock/log did not answer a list of entries")
    entries = [entry for entry in map(parse_log_entry, payload) if entry is not None]
    last = payload[-1] if payload else None
    cursor = last.get("id") if isinstance(last, dict) and is_object_id(last.get("id")) else None
    return entries, cursor, len(payload)
