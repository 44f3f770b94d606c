"""Rate-limit rules as settings write them ("3000/minute", "5/hour", "off"), and the verdict.

Pure: the counting itself is ``keyhouse.store.rate_limits`` (the ``limits`` library, in process
memory or in Redis).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import limits

OFF = "off"


def parse_rule(text: str) -> limits.RateLimitItem | None:
    """The rule ``text`` names (None for "off"); a ValueError that says what to write."""
    if text.strip().lower() == OFF:
        return None
    try:
        return limits.parse(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a rate limit: write e.g. '3000/minute', '5/hour', "
            "'10 per 30 seconds', or 'off'"
        ) from None


def describe(item: limits.RateLimitItem) -> str:
    """ "5 an hour", "3000 a minute", "10 per 30 seconds"."""
    unit = item.GRANULARITY.name
    if item.multiples == 1:
        return f"{item.amount} a{'n' if unit == 'hour' else ''} {unit}"
    return f"{item.amount} per {item.multiples} {unit}s"


@dataclass(frozen=True)
class Verdict:
    """Whether the request may go on; if not, how many seconds until it may."""

    allowed: bool
    retry_after: float = 0.0

    @property
    def retry_after_header(self) -> str:
        """The Retry-After value: whole seconds, at least 1."""
        return str(max(1, math.ceil(self.retry_after)))

    def next_allowed(self, now: datetime) -> datetime:
        """When the next request is allowed (whole seconds, as Retry-After says)."""
        return now + timedelta(seconds=int(self.retry_after_header))


ALLOWED = Verdict(True)
