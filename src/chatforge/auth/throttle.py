"""Login throttling with the ``limits`` library (moving window).

Failures count per username and per client address; a successful login does not reset the
address counter, so one address cannot walk through many usernames.
"""

from __future__ import annotations

import time

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter

from chatforge.errors import RateLimited


class LoginThrottle:
    def __init__(
        self, storage: Storage, *, per_username: int, per_ip: int, window_minutes: int
    ) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        self._per_username = RateLimitItemPerMinute(per_username, window_minutes)
        self._per_ip = RateLimitItemPerMinute(per_ip, window_minutes)

    def _keys(self, username: str, ip: str) -> tuple[tuple[RateLimitItem, str], ...]:
        return ((self._per_username, f"user:{username.lower()}"), (self._per_ip, f"ip:{ip}"))

    async def check(self, username: str, ip: str) -> None:
        """Raise ``RateLimited`` if this username or address has failed too often."""
        for item, key in self._keys(username, ip):
            if not await self._limiter.test(item, "login", key):
                stats = await self._limiter.get_window_stats(item, "login", key)
                retry_after = int(stats.reset_time - time.time()) + 1
                raise RateLimited(
                    "Too many failed logins; try again later.", retry_after=retry_after
                )

    async def record_failure(self, username: str, ip: str) -> None:
        for item, key in self._keys(username, ip):
            await self._limiter.hit(item, "login", key)

    async def record_success(self, username: str) -> None:
        await self._limiter.clear(self._per_username, "login", f"user:{username.lower()}")
