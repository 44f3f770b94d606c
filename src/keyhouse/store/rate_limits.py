"""How often a client may ask: one small interface over the ``limits`` library.

Counts live in process memory by default; with ``KEYHOUSE_REDIS_URL`` they live in Redis, so
every process of the server shares them. A moving window: "5/hour" means at most 5 in any hour.
If Redis can't be reached the request is let through (a warning is logged, at most once a
minute): the limits protect the server, they must not take it down.
"""

from __future__ import annotations

import logging
import threading
import time

import limits
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from keyhouse.rules.rate_limit import ALLOWED, Verdict, parse_rule

log = logging.getLogger(__name__)


class RateLimits:
    def __init__(self, redis_url: str | None = None, namespace: str = "") -> None:
        """``namespace`` keeps the counts of one store apart from another's on a shared
        Redis (e.g. a digest of the database URL)."""
        self.shared = bool(redis_url)
        self.namespace = namespace
        self.storage = storage_from_string(redis_url or "memory://")
        self._limiter = MovingWindowRateLimiter(self.storage)
        self._rules: dict[str, limits.RateLimitItem | None] = {}
        self._warned = 0.0
        self._lock = threading.Lock()

    def rule(self, text: str) -> limits.RateLimitItem | None:
        with self._lock:
            if text not in self._rules:
                self._rules[text] = parse_rule(text)
            return self._rules[text]

    def hit(self, rule: str, *key: str | int) -> Verdict:
        """Count one request of ``key`` under ``rule``; refused (nothing counted) when full."""
        return self._ask(rule, key, count=True)

    def test(self, rule: str, *key: str | int) -> Verdict:
        """Would one more request of ``key`` go through? (Counts nothing.)"""
        return self._ask(rule, key, count=False)

    def clear(self, rule: str, *key: str | int) -> None:
        item = self.rule(rule)
        if item is not None:
            self.storage.clear(item.key_for(self.namespace, *map(str, key)))

    def _ask(self, rule: str, key: tuple[str | int, ...], *, count: bool) -> Verdict:
        item = self.rule(rule)
        if item is None:
            return ALLOWED
        parts = [self.namespace, *(str(part) for part in key)]
        try:
            allowed = self._limiter.hit(item, *parts) if count else self._limiter.test(item, *parts)
            if allowed:
                return ALLOWED
            reset = self._limiter.get_window_stats(item, *parts).reset_time
        except Exception as error:  # the storage (Redis) is unreachable: let it through
            self._warn(error)
            return ALLOWED
        return Verdict(False, max(0.0, reset - time.time()))

    def _warn(self, error: Exception) -> None:
        now = time.monotonic()
        if now - self._warned > 60:
            self._warned = now
            log.warning("rate limits not counted: their storage failed (%s)", error)
