"""RateLimiter: GCRA token bucket with an injected clock and sleep (nothing really waits)."""

from __future__ import annotations

import asyncio

import pytest

from cryptorun_core.market.ratelimit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


def run(coro):
    return asyncio.run(coro)


def test_first_request_is_free_then_min_interval():
    clock = FakeClock()
    limiter = RateLimiter(2.0, clock=clock, sleep=clock.sleep)

    async def go():
        return [await limiter.acquire() for _ in range(4)]

    assert run(go()) == [0.0, 0.5, 0.5, 0.5]
    assert clock.sleeps == [0.5, 0.5, 0.5] and clock.t == pytest.approx(1.5)
    assert limiter.stats.requests == 4 and limiter.stats.total_wait_s == pytest.approx(1.5)


def test_idle_time_refills_but_never_beyond_the_burst():
    clock = FakeClock()
    limiter = RateLimiter(1.0, burst=3, clock=clock, sleep=clock.sleep)
    assert [limiter.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]  # a burst of 3
    assert limiter.reserve() == pytest.approx(1.0)
    clock.t += 100  # long idle: the bucket refills to 3, not to 100
    assert [limiter.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.reserve() == pytest.approx(1.0)


def test_weighted_cost_scales_the_wait():
    clock = FakeClock()
    limiter = RateLimiter.for_venue(1000, clock=clock, sleep=clock.sleep)  # kraken: 1000 ms per unit
    assert limiter.weighted and limiter.interval_s == pytest.approx(1.0)
    assert limiter.reserve(1.2) == 0.0
    assert limiter.reserve(1.2) == pytest.approx(1.2)
    assert limiter.reserve(0.5) == pytest.approx(2.4)


def test_override_is_a_flat_requests_per_second_budget():
    clock = FakeClock()
    limiter = RateLimiter.for_venue(100, override_rate_per_s=4, clock=clock, sleep=clock.sleep)
    assert not limiter.weighted and limiter.rate_per_s == 4
    assert [limiter.reserve(10.0) for _ in range(3)] == [0.0, pytest.approx(0.25), pytest.approx(0.5)]


def test_override_faster_than_the_venue_is_ignored():
    clock = FakeClock()
    limiter = RateLimiter.for_venue(1000, override_rate_per_s=4, clock=clock, sleep=clock.sleep)
    assert limiter.weighted and limiter.rate_per_s == pytest.approx(1.0)


def test_concurrent_acquires_are_serialised_without_a_lock():
    slept: list[float] = []

    async def yielding_sleep(seconds: float) -> None:  # time stands still while all five queue up
        slept.append(seconds)
        await asyncio.sleep(0)

    limiter = RateLimiter(10.0, clock=lambda: 0.0, sleep=yielding_sleep)

    async def go():
        return await asyncio.gather(*(limiter.acquire() for _ in range(5)))

    waits = run(go())
    assert sorted(waits) == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])  # each booked its own slot
    assert limiter.stats.waits == pytest.approx([0.1, 0.2, 0.3, 0.4]) and sorted(slept) == pytest.approx([0.1, 0.2, 0.3, 0.4])


def test_reset_stats_and_validation():
    limiter = RateLimiter(1.0, clock=lambda: 0.0)
    limiter.reserve()
    limiter.reset_stats()
    assert limiter.stats.requests == 0 and limiter.stats.waits == []
    with pytest.raises(ValueError):
        RateLimiter(0)
    with pytest.raises(ValueError):
        RateLimiter(1.0, burst=0.5)
    with pytest.raises(ValueError):
        RateLimiter.for_venue(0)
    assert "kraken" in repr(RateLimiter.for_venue(1000, name="kraken"))
