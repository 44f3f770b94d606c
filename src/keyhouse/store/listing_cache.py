"""Serialised key listings per lock, keyed by the lock's ``keys_version`` from the database.

Listing keys is what clients poll. A write bumps the version in the same transaction, so an
entry is never served for a newer state; several processes each keep their own entries and
stay correct, since the version they key on is read from the shared database.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class ListingCache(Generic[V]):
    """The ``size`` listings used last, each under a key that includes the version it shows
    (a page of keys: the serialised body and the cursor of the next page)."""

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._entries: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            body = self._entries.get(key)
            if body is not None:
                self._entries.move_to_end(key)
            return body

    def put(self, key: Hashable, body: V) -> None:
        with self._lock:
            self._entries[key] = body
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
