"""Work that must happen once across all processes (sweeps, timers), not once per process.

``LocalLeases`` serves one process. ``RedisLeases`` takes a lease with ``SET NX PX``: whichever
process gets it runs the round; the lease expires by itself, so a crashed holder blocks nothing
for longer than one interval.
"""

from __future__ import annotations

import os
import uuid
from abc import ABC, abstractmethod

from redis.asyncio import Redis
from redis.exceptions import RedisError


class Leases(ABC):
    @abstractmethod
    async def acquire(self, name: str, seconds: float) -> bool:
        """True if this process may run ``name`` now (for the next ``seconds``)."""


class LocalLeases(Leases):
    async def acquire(self, name: str, seconds: float) -> bool:
        return True


class RedisLeases(Leases):
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.holder = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

    async def acquire(self, name: str, seconds: float) -> bool:
        try:
            taken = await self.redis.set(
                f"chatforge:lease:{name}", self.holder, nx=True, px=max(1, int(seconds * 1000))
            )
        except (RedisError, OSError):
            # Without Redis nobody can coordinate; skipping a round is safe, running twice is not.
            return False
        return bool(taken)
