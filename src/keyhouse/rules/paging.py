"""Paging of lists: the caps, and the opaque keyset cursors (``after``) that carry a position.

A cursor is the sort key of the last item a page showed, so the next page starts right after
that item whatever was inserted or deleted meanwhile (a keyset, not an offset): no item that
existed throughout is skipped or shown twice. It is URL-safe base64 of a JSON array
``[kind, value, …]``; ``kind`` names the list it belongs to, and the values are checked
against that list's key layout before they reach a query.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from keyhouse.rules.violations import RuleViolation

T = TypeVar("T")

# The default and the hard maximum of ``KEYHOUSE_LIST_MAX_ITEMS``: how many items one answer
# of a list holds at most. The default keeps every list of a normal account in one page
# (50 locks with 200 keys each), so a Nuki client, which knows nothing of paging, sees it all.
LIST_MAX_ITEMS_DEFAULT = 10_000
LIST_MAX_ITEMS_HARD = 100_000

# The longest cursor taken (the longest one made, an auth key, is about 110 characters).
CURSOR_MAX_LENGTH = 200
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"
_CURSOR = re.compile(r"[A-Za-z0-9_-]+")
_ID = re.compile(r"[0-9A-Za-z]{1,64}")

# The sort key of each paged list, by kind: its values, in order, each as wide as its column.
INT32, INT64, INSTANT, ID = "int32", "int64", "instant", "id"
LAYOUTS: dict[str, tuple[str, ...]] = {
    "lock": (INT64,),  # smartlock id, ascending
    "auth": (INT64, INSTANT, ID),  # smartlock id, creation, key id: ascending
    "user": (INT32,),  # account user id, ascending
    "invite": (INT32,),  # invite id, descending (newest first)
}
_BITS = {INT32: 31, INT64: 63}


def page_limit(requested: int | None, cap: int) -> int:
    """The page size: the ``limit`` asked for (1 or more), at most ``cap``; ``cap`` if none."""
    if requested is None:
        return cap
    if requested < 1:
        raise RuleViolation("limit", "minimum", f"limit {requested} is below 1: use 1 to {cap}")
    return min(requested, cap)


def split_page(rows: Sequence[T], limit: int) -> tuple[Sequence[T], bool]:
    """A page of ``limit`` rows read as ``limit + 1``: the page, and whether more follow."""
    return rows[:limit], len(rows) > limit


def encode_cursor(kind: str, key: Sequence[Any]) -> str:
    """The ``after`` value that continues the ``kind`` list after the item with sort ``key``."""
    layout = LAYOUTS[kind]
    if len(key) != len(layout):
        raise ValueError(f"a {kind} cursor has {len(layout)} values, not {len(key)}")
    values: list[Any] = [kind]
    for value in key:
        if isinstance(value, datetime):
            value = value.astimezone(UTC).isoformat()
        values.append(value)
    raw = json.dumps(values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str, kind: str) -> tuple[Any, ...]:
    """The sort key in the ``after`` value ``text`` of the ``kind`` list; a RuleViolation
    (field ``after``, rule ``cursor``) if it is not one this server made for that list."""
    problem = _decode(text, kind)
    if isinstance(problem, str):
        shown = text if len(text) <= 40 else text[:39] + "…"
        raise RuleViolation(
            "after",
            "cursor",
            f"after {shown!r} is not a cursor of this list ({problem}): leave it out for the "
            'first page, then use the URL in the Link header (rel="next") as it is',
        )
    return problem


def _decode(text: str, kind: str) -> tuple[Any, ...] | str:
    if not text or len(text) > CURSOR_MAX_LENGTH:
        return f"a cursor has 1 to {CURSOR_MAX_LENGTH} characters"
    if not _CURSOR.fullmatch(text):
        return "a cursor has only the characters A-Z, a-z, 0-9, - and _"
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        values = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError):
        return "it is not the base64 of a cursor"
    if not isinstance(values, list) or not values or values[0] != kind:
        return "it belongs to another list"
    layout = LAYOUTS[kind]
    if len(values) != len(layout) + 1:
        return "it has the wrong number of values"
    key: list[Any] = []
    for kind_of, value in zip(layout, values[1:], strict=True):
        if kind_of in _BITS:
            bits = _BITS[kind_of]
            if not isinstance(value, int) or isinstance(value, bool):
                return "a value is not an integer"
            if not -(2**bits) <= value < 2**bits:
                return f"a value is not a {bits + 1}-bit integer"
            key.append(value)
        elif kind_of == ID:
            if not isinstance(value, str) or not _ID.fullmatch(value):
                return "a value is not an id"
            key.append(value)
        else:
            try:
                instant = datetime.fromisoformat(value) if isinstance(value, str) else None
                if instant is None or instant.tzinfo is None:
                    return "a value is not an instant"
                key.append(instant.astimezone(UTC))
            except (ValueError, OverflowError):
                return "a value is not an instant"
    return tuple(key)
