"""Idempotency keys: what a valid key is, what makes two requests "the same", how long a key
is remembered. Pure: no I/O."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_MAX = 255
# A key is remembered this long; an older record counts as absent (and is pruned).
KEEP_FOR = timedelta(hours=24)
# A request under a key that did not finish (its process died during a lock action) is
# taken over by a retry after this long: far longer than any one action takes.
ABANDONED_AFTER = timedelta(minutes=5)
# The status of a record whose request is still running (lock actions, which are not one
# database transaction); never an HTTP status.
IN_PROGRESS = 0


def key_problem(value: str) -> str | None:
    """Why ``value`` can't be an idempotency key (None if it can): 1 to 255 printable ASCII
    characters (space to ``~``)."""
    if not value:
        return f"the {HEADER} header is empty: send 1 to {KEY_MAX} printable ASCII characters"
    if len(value) > KEY_MAX:
        return f"the {HEADER} header has {len(value)} characters: at most {KEY_MAX} (a UUID is 36)"
    bad = next((c for c in value if not " " <= c <= "~"), None)
    if bad is not None:
        return (
            f"the {HEADER} header contains {bad!r} (U+{ord(bad):04X}), which is not printable "
            "ASCII: use letters, digits and punctuation, e.g. a UUID"
        )
    return None


def body_hash(raw: bytes) -> str:
    """SHA-256 (hex) of the request body exactly as sent."""
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class Fingerprint:
    """What a retry must repeat exactly to be the same request."""

    method: str
    path: str
    body_hash: str

    def differences(self, other: Fingerprint) -> list[str]:
        """What differs from ``other``, in words ("the method (POST, was PUT)", …)."""
        found = []
        if self.method != other.method:
            found.append(f"the method ({self.method}, was {other.method})")
        if self.path != other.path:
            found.append(f"the path ({self.path}, was {other.path})")
        if self.body_hash != other.body_hash:
            found.append("the body")
        return found


def expired(created_at: datetime, now: datetime) -> bool:
    return now - created_at >= KEEP_FOR


def abandoned(created_at: datetime, now: datetime) -> bool:
    return now - created_at >= ABANDONED_AFTER
