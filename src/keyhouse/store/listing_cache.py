"""Serialised key listings per lock, keyed by the lock's ``keys_version`` from the database.

Listing keys is what clients poll. A write bumps the version in the same transaction, so an
entry is never served for a newer state; several processes each keep their own entries and
stay correct, since the version they key on is read from the shared database.

The cache holds what fits in a budget of bytes (``KEYHOUSE_LISTING_CACHE_MB``), least recently
used out first: sized by entries, a client polling more locks than the cache had entries (a
rotation over 1,000 locks through 512 entries) missed every time.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

# What an entry costs beyond its body: the key tuple, the OrderedDict's node, the cursor.
ENTRY_OVERHEAD_BYTES = 400


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    entries: int
    bytes: int
    budget: int

    @property
    def hit_rate(self) -> float:
        asked = self.hits + self.misses
        return self.hits / asked if asked else 0.0

    def describe(self) -> str:
        return (
            f"{self.hits:,} hits, {self.misses:,} misses ({self.hit_rate:.1%} hits); "
            f"{self.entries:,} listings in {self.bytes / 2**20:.1f} of "
            f"{self.budget / 2**20:.0f} MB"
        )


class ListingCache:
    """Listings (a page of keys: the serialised body and the cursor of the next page) under
    keys that include the version they show, within ``max_bytes``; 0 keeps nothing."""

    def __init__(self, max_bytes: int = 64 * 2**20) -> None:
        self._budget = max_bytes
        self._entries: OrderedDict[Hashable, tuple[bytes, str | None]] = OrderedDict()
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._lock = threading.Lock()

    @staticmethod
    def _cost(listing: tuple[bytes, str | None]) -> int:
        return len(listing[0]) + ENTRY_OVERHEAD_BYTES

    def get(self, key: Hashable) -> tuple[bytes, str | None] | None:
        with self._lock:
            listing = self._entries.get(key)
            if listing is None:
                self._misses += 1
                return None
            self._hits += 1
            self._entries.move_to_end(key)
            return listing

    def put(self, key: Hashable, listing: tuple[bytes, str | None]) -> None:
        cost = self._cost(listing)
        if cost > self._budget:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= self._cost(old)
            self._entries[key] = listing
            self._bytes += cost
            while self._bytes > self._budget:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= self._cost(dropped)

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                self._hits, self._misses, len(self._entries), self._bytes, self._budget
            )
