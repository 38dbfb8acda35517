"""MemoryWindows: the in-process rate-limit storage behind LimitsRateLimits and LoginThrottle."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from limits import parse
from limits.aio.strategies import MovingWindowRateLimiter

from chatforge.errors import RateLimited
from chatforge.services.ratelimits import LimitsRateLimits
from chatforge.services.window_storage import MemoryWindows


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_a_window_admits_its_limit_then_slides() -> None:
    clock = Clock()
    limiter = MovingWindowRateLimiter(MemoryWindows(clock))
    rule = parse("3/10 seconds")
    for step in range(3):
        clock.now = 1_000.0 + step
        assert await limiter.hit(rule, "room", "7")
    clock.now = 1_005.0
    assert not await limiter.hit(rule, "room", "7"), "a fourth within ten seconds"
    assert await limiter.hit(rule, "room", "8"), "another key has a window of its own"
    stats = await limiter.get_window_stats(rule, "room", "7")
    assert (stats.reset_time, stats.remaining) == (1_010.0, 0)
    clock.now = 1_010.0
    assert not await limiter.hit(rule, "room", "7"), "a moment exactly 10 s old still counts"
    clock.now = 1_010.5
    assert await limiter.hit(rule, "room", "7"), "the first moment left the window"
    assert not await limiter.hit(rule, "room", "7")


async def test_a_refused_hit_counts_nothing() -> None:
    clock = Clock()
    limiter = MovingWindowRateLimiter(MemoryWindows(clock))
    rule = parse("2/minute")
    assert await limiter.hit(rule, "k")
    assert await limiter.hit(rule, "k")
    for _ in range(5):
        clock.now += 1
        assert not await limiter.hit(rule, "k")
    clock.now = 1_000.0 + 60.5
    # Both counted moments (at 1,000.0) left; the five refusals were never counted.
    assert await limiter.hit(rule, "k")
    assert await limiter.hit(rule, "k")


async def test_costs_over_one() -> None:
    storage = MemoryWindows(Clock())
    assert not await storage.acquire_entry("k", 3, 10, amount=4), "more than the limit"
    assert await storage.acquire_entry("k", 3, 10, amount=2)
    assert not await storage.acquire_entry("k", 3, 10, amount=2)
    assert await storage.acquire_entry("k", 3, 10, amount=1)
    assert await storage.get_moving_window("k", 3, 10) == (1_000.0, 3)


async def test_rate_limited_names_the_seconds_until_a_slot_frees() -> None:
    clock = Clock(time.time())  # LimitsRateLimits reads the real clock for retry_after
    limits = LimitsRateLimits(MemoryWindows(clock))
    rule = parse("2/30 seconds")
    await limits.consume(rule, "session-message", "1", "2")
    clock.now += 12
    await limits.consume(rule, "session-message", "1", "2")
    with pytest.raises(RateLimited) as refused:
        await limits.consume(rule, "session-message", "1", "2")
    assert refused.value.retry_after >= 18
    await limits.reset(rule, "session-message", "1", "2")
    await limits.consume(rule, "session-message", "1", "2")


async def test_idle_keys_are_dropped_and_active_ones_kept() -> None:
    clock = Clock()
    storage = MemoryWindows(clock)
    for person in range(100):
        assert await storage.acquire_entry(f"p{person}", 5, 10)
    clock.now += 5
    assert await storage.acquire_entry("p0", 5, 10)
    clock.now += 6  # 11 s after the first hundred, 6 s after p0's second
    assert await storage.acquire_entry("p1", 5, 10)
    assert set(storage._windows) == {"p0", "p1"}
    assert await storage.get_moving_window("p0", 5, 10) == (1_005.0, 1)
    # A read of a key never counted stores nothing.
    assert await storage.get_moving_window("nobody", 5, 10) == (clock.now, 0)
    assert "nobody" not in storage._windows


async def test_counting_starts_no_task_and_no_thread() -> None:
    """The library's memory storage sent every key to a worker thread after each hit; this one
    must stay on the caller's task, however many keys are alive."""
    storage = MemoryWindows()
    limiter = MovingWindowRateLimiter(storage)
    rule = parse("5/10 seconds")
    tasks, threads = len(asyncio.all_tasks()), threading.active_count()
    for person in range(500):
        assert await limiter.hit(rule, "session-reaction", "1", str(person))
    for person in range(500):
        assert await limiter.hit(rule, "session-reaction", "1", str(person))
    await asyncio.sleep(0)
    assert (len(asyncio.all_tasks()), threading.active_count()) == (tasks, threads)


async def test_plain_counters() -> None:
    clock = Clock()
    storage = MemoryWindows(clock)
    assert await storage.incr("c", 10) == 1
    assert await storage.incr("c", 10, amount=2) == 3
    assert await storage.get("c") == 3
    assert await storage.get_expiry("c") == 1_010.0
    clock.now = 1_010.0
    assert await storage.get("c") == 0, "expired"
    assert await storage.incr("c", 10) == 1, "a new window"
    await storage.clear("c")
    assert await storage.get("c") == 0
    await storage.incr("c", 10)
    assert await storage.acquire_entry("w", 1, 10)
    assert await storage.reset() == 2
    assert await storage.check()
    assert await storage.acquire_entry("w", 1, 10)


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(1, 4),
    window=st.integers(1, 5),
    steps=st.lists(st.tuples(st.integers(0, 3), st.integers(1, 3)), max_size=40),
)
def test_matches_a_model_of_the_moving_window(
    limit: int, window: int, steps: list[tuple[int, int]]
) -> None:
    """Against the definition: a hit of ``cost`` is admitted when the admitted moments of the
    last ``window`` seconds (inclusive) plus ``cost`` stay within ``limit``."""

    async def run() -> None:
        clock = Clock(0.0)
        storage = MemoryWindows(clock)
        admitted: list[float] = []
        for advance, cost in steps:
            clock.now += advance
            live = [t for t in admitted if t >= clock.now - window]
            expected = cost <= limit and len(live) + cost <= limit
            assert await storage.acquire_entry("k", limit, window, amount=cost) == expected
            if expected:
                admitted += [clock.now] * cost
            live = [t for t in admitted if t >= clock.now - window]
            assert await storage.get_moving_window("k", limit, window) == (
                (live[0], len(live)) if live else (clock.now, 0)
            )

    asyncio.run(run())
