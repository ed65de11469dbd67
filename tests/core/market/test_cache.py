"""TTLCache: per-entry TTL with remaining time, LRU bound, counters; time is always passed in."""

from __future__ import annotations

import pytest

from cryptorun_core.market.cache import TTLCache


def test_get_returns_value_and_remaining_ttl():
    cache: TTLCache[str, int] = TTLCache(max_entries=10)
    cache.put("a", 1, ttl_s=60, now=100.0)
    assert cache.get("a", now=100.0) == (1, 60.0)
    assert cache.get("a", now=130.5) == (1, 29.5)
    assert cache.stats.hits == 2 and cache.stats.misses == 0


def test_entries_expire_exactly_at_their_ttl():
    cache: TTLCache[str, int] = TTLCache(max_entries=10)
    cache.put("a", 1, ttl_s=10, now=0.0)
    assert cache.get("a", now=9.999) is not None
    assert cache.get("a", now=10.0) is None  # remaining 0 is expired
    assert len(cache) == 0  # dropped on sight
    assert cache.stats.expirations == 1 and cache.stats.misses == 1


def test_missing_key_is_a_miss():
    cache: TTLCache[str, int] = TTLCache(max_entries=2)
    assert cache.get("nope", now=0.0) is None
    assert cache.stats.misses == 1 and cache.stats.hits == 0


def test_lru_eviction_keeps_the_recently_used():
    cache: TTLCache[str, int] = TTLCache(max_entries=2)
    cache.put("a", 1, 100, now=0)
    cache.put("b", 2, 100, now=0)
    assert cache.get("a", now=1) is not None  # "a" becomes most recently used
    cache.put("c", 3, 100, now=2)  # evicts "b", the least recently used
    assert len(cache) == 2
    assert cache.get("b", now=3) is None
    assert cache.get("a", now=3)[0] == 1 and cache.get("c", now=3)[0] == 3
    assert cache.stats.evictions == 1


def test_put_replaces_value_and_ttl_without_evicting():
    cache: TTLCache[str, int] = TTLCache(max_entries=1)
    cache.put("a", 1, 10, now=0)
    cache.put("a", 2, 50, now=5)
    assert cache.get("a", now=5) == (2, 50)
    assert cache.stats.evictions == 0


def test_non_positive_ttl_stores_nothing():
    cache: TTLCache[str, int] = TTLCache(max_entries=5)
    cache.put("a", 1, 0, now=0)
    cache.put("b", 1, -5, now=0)
    assert len(cache) == 0 and cache.get("a", now=0) is None


def test_purge_invalidate_clear():
    cache: TTLCache[tuple, str] = TTLCache(max_entries=5)
    cache.put(("ohlcv", "kraken", "BTC/USD"), "x", 10, now=0)
    cache.put(("book", "okx", "ETH/USD"), "y", 100, now=0)
    cache.put(("book", "okx", "SOL/USD"), "z", 100, now=0)
    assert cache.purge(now=20) == 1 and len(cache) == 2
    cache.invalidate(("book", "okx", "ETH/USD"))
    cache.invalidate(("not", "there"))
    assert ("book", "okx", "ETH/USD") not in cache and ("book", "okx", "SOL/USD") in cache
    cache.get(("book", "okx", "SOL/USD"), now=21)
    cache.clear()
    assert len(cache) == 0 and cache.stats.to_dict() == {"hits": 0, "misses": 0, "evictions": 0, "expirations": 0}


def test_bound_must_be_positive():
    with pytest.raises(ValueError):
        TTLCache(max_entries=0)


def test_repr_is_short():
    cache: TTLCache[str, int] = TTLCache(max_entries=3)
    cache.put("a", 1, 10, now=0)
    assert repr(cache).startswith("TTLCache(entries=1, max_entries=3")
