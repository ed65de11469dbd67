"""A small bounded TTL cache whose entries report how long they have left.

The warm scan reads "from cached sources": a result fetched less than ``cache_ttl_s`` ago is
served again instead of costing requests, and the artifact says so (``cached``,
``ttl_remaining_s``, SPEC §9). Time is always passed in by the caller, so the cache is
deterministic under test and never reads a clock of its own.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class CacheStats:
    """Counters since construction (or the last :meth:`TTLCache.clear`)."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0  # live entries pushed out by the size bound (LRU)
    expirations: int = 0  # entries found expired on read (also counted as misses)

    def to_dict(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "evictions": self.evictions, "expirations": self.expirations}


@dataclass(frozen=True)
class _Entry(Generic[V]):
    value: V
    expires_at: float


class TTLCache(Generic[K, V]):
    """Bounded mapping with a time-to-live per entry and least-recently-used eviction.

    ``get(key, now)`` returns ``(value, ttl_remaining_s)`` or None when the key is absent or
    expired; ``put(key, value, ttl_s, now)`` stores it until ``now + ttl_s``. A non-positive TTL
    stores nothing (a job with ``cache_ttl_s = 0`` simply never hits).
    """

    def __init__(self, max_entries: int = 50_000):
        if max_entries <= 0:
            raise ValueError("max_entries must be positive")
        self.max_entries = int(max_entries)
        self._data: OrderedDict[K, _Entry[V]] = OrderedDict()
        self.stats = CacheStats()

    def get(self, key: K, now: float) -> tuple[V, float] | None:
        """The live value of ``key`` and its remaining TTL in seconds, or None."""
        entry = self._data.get(key)
        if entry is None:
            self.stats.misses += 1
            return None
        remaining = entry.expires_at - now
        if remaining <= 0:
            # expired entries are dropped on sight so they never occupy a slot for long
            del self._data[key]
            self.stats.expirations += 1
            self.stats.misses += 1
            return None
        self._data.move_to_end(key)  # a hit makes the entry most recently used
        self.stats.hits += 1
        return entry.value, remaining

    def put(self, key: K, value: V, ttl_s: float, now: float) -> None:
        """Store ``value`` for ``ttl_s`` seconds from ``now``, evicting the LRU entry when full."""
        if ttl_s <= 0:
            self._data.pop(key, None)
            return
        if key in self._data:
            del self._data[key]
        elif len(self._data) >= self.max_entries:
            self._data.popitem(last=False)
            self.stats.evictions += 1
        self._data[key] = _Entry(value=value, expires_at=now + ttl_s)

    def invalidate(self, key: K) -> None:
        """Forget ``key`` (no error when absent)."""
        self._data.pop(key, None)

    def purge(self, now: float) -> int:
        """Drop every expired entry; returns how many were dropped."""
        dead = [k for k, e in self._data.items() if e.expires_at <= now]
        for k in dead:
            del self._data[k]
        self.stats.expirations += len(dead)
        return len(dead)

    def clear(self) -> None:
        """Empty the cache and reset its counters."""
        self._data.clear()
        self.stats = CacheStats()

    def __len__(self) -> int:
        """Stored entries, including expired ones not yet read or purged."""
        return len(self._data)

    def __contains__(self, key: object) -> bool:  # presence only; use get() for liveness
        return key in self._data

    def __repr__(self) -> str:
        return f"TTLCache(entries={len(self._data)}, max_entries={self.max_entries}, stats={self.stats.to_dict()})"
