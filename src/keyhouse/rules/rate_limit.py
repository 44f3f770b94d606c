"""Token buckets: how often one client may ask, refilled steadily over time.

The rule is pure: the functions take the bucket and the time and return the new bucket and the
verdict. ``RateLimiter`` keeps one bucket per key (a client IP) in process memory, with the
clock injected so tests can move time by hand.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    """``capacity`` requests at once, refilled at ``capacity`` per ``per_seconds``."""

    capacity: int
    per_seconds: float

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.per_seconds <= 0:
            raise ValueError(
                f"a limit needs capacity >= 1 and per_seconds > 0, not {self.capacity} per "
                f"{self.per_seconds} s"
            )

    @property
    def rate(self) -> float:
        """Tokens refilled per second."""
        return self.capacity / self.per_seconds


@dataclass(frozen=True)
class Bucket:
    """Tokens left (fractions refill over time) as of the instant ``at`` (clock seconds)."""

    tokens: float
    at: float


@dataclass(frozen=True)
class Verdict:
    """Whether the request may go on; if not, how many seconds until it may."""

    allowed: bool
    retry_after: float = 0.0

    @property
    def retry_after_header(self) -> str:
        """The Retry-After value: whole seconds, at least 1."""
        return str(max(1, math.ceil(self.retry_after)))


def refill(bucket: Bucket | None, limit: Limit, now: float) -> Bucket:
    """The bucket at ``now``: a new client starts full; tokens never exceed the capacity.

    A clock that went backwards adds nothing (and does not move the bucket's instant back).
    """
    if bucket is None:
        return Bucket(float(limit.capacity), now)
    elapsed = max(0.0, now - bucket.at)
    tokens = min(float(limit.capacity), bucket.tokens + elapsed * limit.rate)
    return Bucket(tokens, max(now, bucket.at))


def _wait(bucket: Bucket, limit: Limit, cost: float) -> float:
    return max(0.0, (cost - bucket.tokens) / limit.rate)


def check(bucket: Bucket | None, limit: Limit, now: float, cost: float = 1.0) -> Verdict:
    """Would a request costing ``cost`` go through now? (Spends nothing.)"""
    current = refill(bucket, limit, now)
    if current.tokens >= cost:
        return Verdict(True)
    return Verdict(False, _wait(current, limit, cost))


def take(
    bucket: Bucket | None, limit: Limit, now: float, cost: float = 1.0
) -> tuple[Bucket, Verdict]:
    """Spend ``cost`` tokens if there are enough: the new bucket and the verdict.

    A refused request spends nothing, so a client that keeps hammering is let in again as
    soon as the bucket refills, no later.
    """
    current = refill(bucket, limit, now)
    if current.tokens >= cost:
        return Bucket(current.tokens - cost, current.at), Verdict(True)
    return current, Verdict(False, _wait(current, limit, cost))


class RateLimiter:
    """One bucket per key in process memory (with several server processes, each counts
    on its own). Thread-safe; forgets full buckets once it holds more than ``max_keys``."""

    def __init__(
        self,
        limit: Limit,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.limit = limit
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, Bucket] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, key: str) -> Verdict:
        """Would one more request of ``key`` go through? (Spends nothing.)"""
        with self._lock:
            return check(self._buckets.get(key), self.limit, self.clock())

    def take(self, key: str) -> Verdict:
        """Count one request of ``key``; refused when its bucket is empty."""
        with self._lock:
            now = self.clock()
            bucket, verdict = take(self._buckets.get(key), self.limit, now)
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_keys:
                self._prune(now)
            return verdict

    def _prune(self, now: float) -> None:
        """Drop buckets that have refilled (they hold nothing a new bucket wouldn't); if that
        is not enough, drop the longest-idle half."""
        full = float(self.limit.capacity)
        for key, bucket in list(self._buckets.items()):
            if refill(bucket, self.limit, now).tokens >= full:
                del self._buckets[key]
        if len(self._buckets) > self.max_keys:
            by_age = sorted(self._buckets.items(), key=lambda item: item[1].at)
            for key, _bucket in by_age[: len(by_age) // 2 + 1]:
                del self._buckets[key]
