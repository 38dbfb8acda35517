"""Rate limits for actions in rooms (L9): a small abstract base, and the ``limits`` library
behind it.

``LimitsRateLimits`` counts in a moving window over any ``limits.aio`` storage: memory for one
process today, Redis (``RedisStorage``) when several processes share rooms. Tests and future
backends implement the same two methods.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod

from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter

from chatforge.errors import RateLimited


class RateLimits(ABC):
    @abstractmethod
    async def consume(self, rule: RateLimitItem, *key: str) -> None:
        """Count one action under ``rule`` for ``key``; ``RateLimited`` (nothing counted) if
        the window is full, with the seconds until a slot frees up."""

    @abstractmethod
    async def reset(self, rule: RateLimitItem, *key: str) -> None:
        """Forget the actions counted for ``key``."""


class LimitsRateLimits(RateLimits):
    def __init__(self, storage: Storage) -> None:
        self._limiter = MovingWindowRateLimiter(storage)

    async def consume(self, rule: RateLimitItem, *key: str) -> None:
        if await self._limiter.hit(rule, *key):
            return
        stats = await self._limiter.get_window_stats(rule, *key)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(
            f"Too many actions: at most {rule.amount} per {_window(rule)}. "
            f"Try again in {retry_after} s.",
            retry_after=retry_after,
        )

    async def reset(self, rule: RateLimitItem, *key: str) -> None:
        await self._limiter.clear(rule, *key)


def rule(text: str) -> RateLimitItem:
    """A rule such as ``"5/10 seconds"`` or ``"10/minute"``."""
    return parse(text)


def _window(item: RateLimitItem) -> str:
    unit = item.GRANULARITY.name
    return unit if item.multiples == 1 else f"{item.multiples} {unit}s"
