"""The key-listing cache holds what fits in its byte budget, least recently used out first,
and counts its hits."""

from __future__ import annotations

from keyhouse.store.listing_cache import ENTRY_OVERHEAD_BYTES, ListingCache


def listing(size: int) -> tuple[bytes, str | None]:
    return (b"x" * (size - ENTRY_OVERHEAD_BYTES), None)


def test_a_rotation_that_fits_the_budget_always_hits_after_the_first_round() -> None:
    cache = ListingCache(max_bytes=1000 * 1000)
    for round_ in range(3):
        for lock in range(1000):
            if cache.get((lock, 1)) is None:
                assert round_ == 0, (round_, lock)
                cache.put((lock, 1), listing(1000))
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.entries) == (2000, 1000, 1000)
    assert stats.bytes == 1000 * 1000
    assert "66.7% hits" in stats.describe()


def test_least_recently_used_goes_first_and_the_budget_holds() -> None:
    cache = ListingCache(max_bytes=3000)
    for key in "abc":
        cache.put(key, listing(1000))
    assert cache.get("a") is not None  # a is now the newest
    cache.put("d", listing(1000))
    assert cache.get("b") is None
    assert all(cache.get(key) is not None for key in "acd")
    assert cache.stats().bytes <= 3000
    cache.put("a", listing(2000))  # replacing an entry counts its new size only
    assert cache.stats().bytes <= 3000
    assert cache.get("a") is not None


def test_a_listing_larger_than_the_budget_is_not_kept() -> None:
    cache = ListingCache(max_bytes=500)
    cache.put("big", listing(1000))
    assert cache.get("big") is None
    off = ListingCache(max_bytes=0)
    off.put("any", listing(401))
    assert off.get("any") is None and off.stats().entries == 0
