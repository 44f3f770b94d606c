"""Drift between Keyhouse's key and the upstream's copy: the safer state wins.

A key of a lock driven through someone else's system (Nuki's cloud) may be changed there,
behind Keyhouse's back. :func:`decide` compares Keyhouse's desired key with the upstream's and
merges them **field by field into the intersection of the access they grant**, so the result
never opens the door where either side would not:

* ``enabled``, ``remoteAllowed``: true only where both are true;
* ``allowedFromDate``: the later start; ``allowedUntilDate``: the earlier end (absent: open);
* ``allowedWeekDays``: the days both allow (bits ANDed; absent or 0 = every day);
* the daily window ``allowedFromTime``–``allowedUntilTime``: the overlap (absent or 0–0 =
  all day; a lone from-time runs to midnight, a lone until-time starts at midnight);
* the result is written as Keyhouse writes a key: a daily window with both ends, its end a
  real minute (an upstream window to midnight ends at 23:59, one minute narrower);
* if an intersection is empty (disjoint dates, days or hours), the key grants nothing: it
  is disabled, and keeps Keyhouse's values of that dimension;
* ``name`` and ``code``: Keyhouse's (neither narrower nor wider: another code is another
  credential, and the guest was given Keyhouse's);
* deleted at the upstream (``None``): the deletion is adopted, whatever the key's type (an
  app key is never re-created on its own: that would send Nuki's invite again).

Fields of the merge that differ from Keyhouse's are **adopted** (the upstream narrowed them);
fields that differ from the upstream's are **put back** (the upstream widened them, or they
are Keyhouse's by rule). Both may happen in one key. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from keyhouse.rules.dates import parse_api_datetime
from keyhouse.rules.violations import RuleViolation
from keyhouse.rules.windows import ALL_WEEK_DAYS, LAST_MINUTE

MINUTES_PER_DAY = 1440
DATE_FIELDS = ("allowedFromDate", "allowedUntilDate")
TIME_FIELDS = ("allowedFromTime", "allowedUntilTime")
# The fields the merge decides, in the order the owner reads them.
MANAGED_FIELDS = (
    "name",
    "code",
    "enabled",
    "remoteAllowed",
    "allowedFromDate",
    "allowedUntilDate",
    "allowedWeekDays",
    "allowedFromTime",
    "allowedUntilTime",
)
# What a create under way is recognised by at the upstream (see :func:`fingerprint`).
FINGERPRINT_FIELDS = ("name", "type", "code", *DATE_FIELDS, "allowedWeekDays", *TIME_FIELDS)


class BadUpstreamKey(ValueError):
    """The upstream's key has a value Keyhouse can't read (the upstream is not trusted)."""


@dataclass(frozen=True)
class Terms:
    """A key's access, normalised: -inf/+inf dates as None, days as a mask 1..127 (0 when no
    day is left), the daily window as [start, end) minutes (start >= end when empty)."""

    enabled: bool
    remote: bool
    start: datetime | None
    end: datetime | None
    days: int
    window: tuple[int, int]

    @property
    def dates_empty(self) -> bool:
        return self.start is not None and self.end is not None and self.start >= self.end

    @property
    def days_empty(self) -> bool:
        return self.days == 0

    @property
    def window_empty(self) -> bool:
        return self.window[0] >= self.window[1]


def _bool(data: Mapping[str, Any], name: str, default: bool) -> bool:
    value = data.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadUpstreamKey(f"{name} {value!r} is not true or false")
    return value


def _int(data: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadUpstreamKey(f"{name} {value!r} is not a whole number from {low} to {high}")
    return value


def _date(data: Mapping[str, Any], name: str) -> datetime | None:
    value = data.get(name)
    if value is None or isinstance(value, datetime):
        return value
    try:
        return parse_api_datetime(value, name)
    except RuleViolation as violation:
        raise BadUpstreamKey(violation.message) from None


def read_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """The managed fields of a key (API names; dates as datetimes), checked: BadUpstreamKey
    names the first field Keyhouse can't read."""
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        raise BadUpstreamKey(f"name {name!r} is not text")
    return {
        "name": name,
        "code": _int(data, "code", 0, 99_999_999),
        "enabled": _bool(data, "enabled", True),
        "remoteAllowed": _bool(data, "remoteAllowed", False),
        "allowedFromDate": _date(data, "allowedFromDate"),
        "allowedUntilDate": _date(data, "allowedUntilDate"),
        "allowedWeekDays": _int(data, "allowedWeekDays", 0, ALL_WEEK_DAYS),
        "allowedFromTime": _int(data, "allowedFromTime", 0, LAST_MINUTE),
        "allowedUntilTime": _int(data, "allowedUntilTime", 0, LAST_MINUTE),
    }


def _window(start: int | None, end: int | None) -> tuple[int, int]:
    if (start is None and end is None) or (start == 0 and end == 0):
        return (0, MINUTES_PER_DAY)
    return (0 if start is None else start, MINUTES_PER_DAY if end is None else end)


def terms(fields: Mapping[str, Any]) -> Terms:
    """The access of a key's fields (as :func:`read_fields` gives them)."""
    return Terms(
        enabled=fields["enabled"],
        remote=fields["remoteAllowed"],
        start=fields["allowedFromDate"],
        end=fields["allowedUntilDate"],
        days=fields["allowedWeekDays"] or ALL_WEEK_DAYS,
        window=_window(fields["allowedFromTime"], fields["allowedUntilTime"]),
    )


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


def _earlier(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def merge(mine: Mapping[str, Any], theirs: Mapping[str, Any]) -> dict[str, Any]:
    """The field-wise intersection of two keys' managed fields (see the module's text);
    Keyhouse's values wherever they mean the same, else written as Keyhouse writes them."""
    a, b = terms(mine), terms(theirs)
    start, end = _later(a.start, b.start), _earlier(a.end, b.end)
    days = a.days & b.days
    window = (max(a.window[0], b.window[0]), min(a.window[1], b.window[1]))
    merged: dict[str, Any] = {"name": mine["name"], "code": mine["code"]}
    merged["enabled"] = a.enabled and b.enabled
    merged["remoteAllowed"] = a.remote and b.remote
    empty = False
    if start is not None and end is not None and start >= end:
        empty = True
        merged.update({name: mine[name] for name in DATE_FIELDS})
    else:
        merged["allowedFromDate"] = start
        merged["allowedUntilDate"] = end
    if days == 0:
        empty = True
        merged["allowedWeekDays"] = mine["allowedWeekDays"]
    else:
        same_days = (mine["allowedWeekDays"] or ALL_WEEK_DAYS) == days
        merged["allowedWeekDays"] = mine["allowedWeekDays"] if same_days else days
    if _window(mine["allowedFromTime"], mine["allowedUntilTime"]) == window:
        merged.update({name: mine[name] for name in TIME_FIELDS})
    else:
        # Written as Keyhouse writes a window (both ends, the end a real minute): an end at
        # midnight (a lone from-time upstream) becomes 23:59, one minute narrower.
        start_minute, end_minute = window[0], min(window[1], LAST_MINUTE)
        if start_minute >= end_minute:
            empty = True
            merged.update({name: mine[name] for name in TIME_FIELDS})
        else:
            merged["allowedFromTime"], merged["allowedUntilTime"] = start_minute, end_minute
    if empty:
        merged["enabled"] = False
    return merged


def keyhouse_times(start: int | None, end: int | None) -> tuple[int | None, int | None]:
    """A daily window as Keyhouse writes it (see :func:`merge`): none for all day, else both
    ends with the end a real minute; a window it can't write is given back as it is."""
    window = _window(start, end)
    if window == (0, MINUTES_PER_DAY):
        return (None, None)
    first, last = window[0], min(window[1], LAST_MINUTE)
    return (first, last) if first < last else (start, end)


def _same(name: str, mine: Mapping[str, Any], theirs: Mapping[str, Any]) -> bool:
    """Whether the field means the same on both sides (absent or 0 days are every day; the
    daily window is compared whole: absent or 0–0 is all day)."""
    if name == "allowedWeekDays":
        return (mine[name] or ALL_WEEK_DAYS) == (theirs[name] or ALL_WEEK_DAYS)
    if name in TIME_FIELDS:
        return _window(*(mine[n] for n in TIME_FIELDS)) == _window(
            *(theirs[n] for n in TIME_FIELDS)
        )
    return bool(mine[name] == theirs[name])


@dataclass(frozen=True)
class Drift:
    """What a drift check does with one key.

    ``deleted``: gone at the upstream; Keyhouse adopts the deletion. Otherwise ``merged`` is
    the key's new desired state (managed fields; dates as datetimes); ``adopted`` maps each
    field Keyhouse takes from the upstream to (Keyhouse's value, the new one); ``put_back``
    maps each field sent back to the upstream to (the upstream's value, Keyhouse's).
    ``unreadable``: the upstream's copy made no sense (its reason); Keyhouse's is put back.
    """

    deleted: bool = False
    merged: dict[str, Any] = field(default_factory=dict)
    adopted: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    put_back: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    unreadable: str | None = None

    @property
    def kind(self) -> str:
        """none, adopt, put_back, merge (some fields adopted, others put back), deleted."""
        if self.deleted:
            return "deleted"
        if self.adopted and self.put_back:
            return "merge"
        if self.adopted:
            return "adopt"
        if self.put_back or self.unreadable:
            return "put_back"
        return "none"


def decide(desired: Mapping[str, Any], upstream: Mapping[str, Any] | None) -> Drift:
    """Compare Keyhouse's key (``desired``, API names) with the upstream's copy (None: deleted
    there) and say what the safer state is. Keyhouse's own key must be readable (it was
    checked when it was written); the upstream's may be anything."""
    if upstream is None:
        return Drift(deleted=True)
    mine = read_fields(desired)
    try:
        theirs = read_fields(upstream)
    except BadUpstreamKey as exc:
        return Drift(
            merged=mine,
            put_back={name: (upstream.get(name), mine[name]) for name in MANAGED_FIELDS},
            unreadable=str(exc),
        )
    merged = merge(mine, theirs)
    adopted = {
        name: (mine[name], merged[name]) for name in MANAGED_FIELDS if not _same(name, mine, merged)
    }
    put_back = {
        name: (theirs[name], merged[name])
        for name in MANAGED_FIELDS
        if not _same(name, theirs, merged)
    }
    return Drift(merged=merged, adopted=adopted, put_back=put_back)


# --- a create under way ---------------------------------------------------------------------


def fingerprint(data: Mapping[str, Any]) -> tuple[Any, ...]:
    """What identifies a key Keyhouse sent among the upstream's: name, type, code, window
    (normalised as the access rules read it) and ``accountUserId``. BadUpstreamKey when a
    value can't be read."""
    fields = read_fields(data)
    kind = data.get("type")
    user = data.get("accountUserId")
    if (kind is not None and not isinstance(kind, int)) or isinstance(kind, bool):
        raise BadUpstreamKey(f"type {kind!r} is not a whole number")
    access = terms(fields)
    return (
        fields["name"],
        kind,
        fields["code"],
        access.start,
        access.end,
        access.days,
        access.window,
        user if isinstance(user, int) and not isinstance(user, bool) else None,
    )


def marker_text(sent: Mapping[str, Any], at: datetime) -> str:
    """A key's ``create_marker``: the fingerprint fields of the key as sent, and when."""
    shown = {name: sent.get(name) for name in (*FINGERPRINT_FIELDS, "accountUserId")}
    for name in DATE_FIELDS:
        if isinstance(shown[name], datetime):
            shown[name] = shown[name].isoformat()
    return json.dumps({"fingerprint": shown, "sentAt": at.isoformat()}, sort_keys=True)


def marker_fingerprint(marker: str) -> tuple[Any, ...]:
    """The fingerprint a ``create_marker`` holds (``{"fingerprint": {...}}`` or the fields
    themselves); ValueError when it holds none."""
    try:
        data = json.loads(marker)
    except ValueError:
        raise ValueError("the create marker is not JSON") from None
    if isinstance(data, dict) and isinstance(data.get("fingerprint"), dict):
        data = data["fingerprint"]
    if not isinstance(data, dict):
        raise ValueError("the create marker holds no fingerprint")
    return fingerprint(data)


def matches(marker_print: tuple[Any, ...], upstream: Mapping[str, Any]) -> bool:
    """Whether the upstream's key is the one a create under way sent (a user the marker does
    not name is not compared)."""
    try:
        found = fingerprint(upstream)
    except BadUpstreamKey:
        return False
    if marker_print[-1] is None:
        return found[:-1] == marker_print[:-1]
    return found == marker_print
