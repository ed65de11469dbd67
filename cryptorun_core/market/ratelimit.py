"""Per-venue request pacing for the live ccxt source.

One :class:`RateLimiter` per venue spaces HTTP requests so a venue never sees more than its
allowed rate: either the venue's own ccxt ``rateLimit`` (milliseconds between unit-cost
requests, scaled by each endpoint's ccxt cost weight) or a job's ``request_rate_per_s``
override (plain requests per second). It is a token bucket written as GCRA ("generic cell rate
algorithm"): each call books the next free slot synchronously and then sleeps until it, so
concurrent coroutines on one event loop are paced correctly without a lock.

The clock and the sleep are injectable, so tests pace requests without really waiting, and
every wait is recorded.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass
class RateLimiterStats:
    """What pacing cost: requests admitted and seconds spent waiting for a slot."""

    requests: int = 0
    waits: list[float] = field(default_factory=list)  # one entry per request that had to wait

    @property
    def total_wait_s(self) -> float:
        return float(sum(self.waits))


class RateLimiter:
    """Token bucket of ``burst`` tokens refilled at ``rate_per_s`` tokens per second.

    ``acquire(cost)`` takes ``cost`` tokens (waiting as long as needed) and returns the seconds
    waited. With ``weighted=False`` every request costs one token whatever the caller passes,
    which is what a plain "requests per second" budget means.
    """

    def __init__(
        self,
        rate_per_s: float,
        *,
        burst: float = 1.0,
        weighted: bool = True,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        name: str = "",
    ):
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate_per_s = float(rate_per_s)
        self.burst = float(burst)
        self.weighted = weighted
        self.name = name
        self._clock = clock or time.monotonic
        self._sleep = sleep or asyncio.sleep
        self._tat: float | None = None  # theoretical arrival time of the next request
        self.stats = RateLimiterStats()

    @classmethod
    def for_venue(
        cls,
        rate_limit_ms: float,
        override_rate_per_s: float = 0.0,
        *,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        name: str = "",
    ) -> "RateLimiter":
        """A limiter from ccxt's ``exchange.rateLimit`` (ms per unit cost), or the job's override.

        An override > 0 can only slow a venue down (the warm scan's "lower request rate"): when it
        is below the venue's own pace it becomes a flat requests-per-second budget (each request
        costs 1, ccxt's endpoint weights are ignored then); a faster override is ignored, since the
        venue would answer it with rate-limit errors.
        """
        venue_rate = 1000.0 / float(rate_limit_ms) if rate_limit_ms > 0 else None
        if override_rate_per_s > 0 and (venue_rate is None or override_rate_per_s < venue_rate):
            return cls(override_rate_per_s, weighted=False, clock=clock, sleep=sleep, name=name)
        if rate_limit_ms <= 0:
            raise ValueError("rate_limit_ms must be positive when no override is given")
        return cls(1000.0 / float(rate_limit_ms), weighted=True, clock=clock, sleep=sleep, name=name)

    @property
    def interval_s(self) -> float:
        """Seconds between two unit-cost requests at the steady rate."""
        return 1.0 / self.rate_per_s

    def reserve(self, cost: float = 1.0) -> float:
        """Book the next slot for a request of ``cost`` and return how long to wait for it."""
        cost = float(cost) if (self.weighted and cost is not None) else 1.0
        cost = max(cost, 0.0)
        now = self._clock()
        tat = now if self._tat is None else max(self._tat, now)
        tolerance = (self.burst - 1.0) * self.interval_s  # how far ahead the bucket lets us run
        start = max(now, tat - tolerance)
        self._tat = tat + cost * self.interval_s
        self.stats.requests += 1
        wait = start - now
        if wait > 0:
            self.stats.waits.append(wait)
        return max(wait, 0.0)

    async def acquire(self, cost: float = 1.0) -> float:
        """Wait for a slot for one request of ``cost``; returns the seconds waited."""
        wait = self.reserve(cost)
        if wait > 0:
            await self._sleep(wait)
        return wait

    def reset_stats(self) -> None:
        self.stats = RateLimiterStats()

    def __repr__(self) -> str:
        mode = "weighted" if self.weighted else "flat"
        return f"RateLimiter(name={self.name!r}, rate_per_s={self.rate_per_s:.3f}, burst={self.burst:g}, {mode})"
