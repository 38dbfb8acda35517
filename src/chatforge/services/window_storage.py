"""Rate-limit counters in this process's memory, for one server without Redis.

``limits`` ships an asyncio memory storage, but its clean-up made it the busiest part of a live
class: after every counted action it starts a task that walks every key, and hands each key's
look-up to a worker thread (``asyncio.to_thread``) and back. Rate limits are counted per person
and action, so a room of 500 people keeps about 500 keys alive; at 50 counted actions a second
that clean-up took 72 % of a core (``benchmarks/ratelimits.py``), and every thread hop also
competed with the event loop for the GIL.

:class:`MemoryWindows` keeps the same moving windows without any of that: a key's window is
pruned when the key is counted or read, and keys nobody touched for a whole window are dropped
in passing, oldest first, without a task, a thread or a timer. ``limits``' own strategy
(:class:`~limits.aio.strategies.MovingWindowRateLimiter`) does the counting on top of it, as
it does on Redis.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable

from limits.aio.storage import MovingWindowSupport, Storage


class MemoryWindows(Storage, MovingWindowSupport):
    """Moving windows (and ``limits``' plain counters) in a dict, for one process."""

    STORAGE_SCHEME = None  # built directly, never from a URI

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self._clock = clock
        # Each key's counted moments, oldest first; at most the rule's limit of them.
        self._windows: dict[str, list[float]] = {}
        # When each key's last moment leaves its window, in the order the keys were last
        # counted: the keys at the front are the first candidates to drop.
        self._idle_at: OrderedDict[str, float] = OrderedDict()
        # limits' fixed-window counters (its other strategies): value and expiry per key.
        self._counters: dict[str, tuple[int, float]] = {}

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError

    # -- moving windows -------------------------------------------------------------------------

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        now = self._clock()
        self._drop_idle(now)
        moments = self._window(key, now, expiry)
        if len(moments) + amount > limit:
            return False
        if not moments:
            moments = self._windows[key] = []
        moments.extend([now] * amount)
        # To the back: the most recently counted key is the last one to go idle.
        self._idle_at[key] = now + expiry
        self._idle_at.move_to_end(key)
        return True

    async def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """The oldest moment still in the window (now when there is none) and how many."""
        now = self._clock()
        moments = self._window(key, now, expiry)
        return (moments[0], len(moments)) if moments else (now, 0)

    def _window(self, key: str, now: float, expiry: int) -> list[float]:
        """``key``'s moments within ``expiry`` seconds of ``now``, the older ones dropped
        (a key never counted reads as an empty list, not stored)."""
        moments = self._windows.get(key)
        if moments is None:
            return []
        if moments and moments[0] < now - expiry:
            # A moment exactly ``expiry`` old still counts, as in limits' own storages.
            del moments[: bisect_left(moments, now - expiry)]
        return moments

    def _drop_idle(self, now: float) -> None:
        """Forget the keys whose every moment has left its window, from the front of
        ``_idle_at``. It stops at the first key still in use, so a call costs only what it
        drops (behind a key with a longer window, an idle one may stay a little longer)."""
        idle_at = self._idle_at
        while idle_at:
            key = next(iter(idle_at))
            if idle_at[key] >= now:  # its last moment still counts
                return
            del idle_at[key]
            self._windows.pop(key, None)

    # -- plain counters (limits' fixed-window strategy; chatforge counts in moving windows) ---

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = self._clock()
        value, expires = self._counters.get(key, (0, 0.0))
        if expires <= now:
            value, expires = 0, now + expiry
        value += amount
        self._counters[key] = (value, expires)
        return value

    async def get(self, key: str) -> int:
        value, expires = self._counters.get(key, (0, 0.0))
        return value if expires > self._clock() else 0

    async def get_expiry(self, key: str) -> float:
        now = self._clock()
        _, expires = self._counters.get(key, (0, now))
        return expires if expires > now else now

    async def check(self) -> bool:
        return True

    async def reset(self) -> int | None:
        count = len(self._windows) + len(self._counters)
        self._windows.clear()
        self._idle_at.clear()
        self._counters.clear()
        return count

    async def clear(self, key: str) -> None:
        self._windows.pop(key, None)
        self._idle_at.pop(key, None)
        self._counters.pop(key, None)
