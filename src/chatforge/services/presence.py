"""Who is online, counted by open sockets (S2: users see whether a moderator is online).

``MemoryPresence`` counts the sockets of this process. Across processes a Redis-backed
implementation keeps the same interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from abc import ABC, abstractmethod
from collections import Counter

from redis.asyncio import Redis
from redis.exceptions import RedisError

from chatforge.store.models import Role

STAFF_ROLES = frozenset({Role.moderator, Role.admin})


class Presence(ABC):
    async def start(self) -> None:  # noqa: B027 - optional hook
        """Begin background work (heartbeats); called once at start-up."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Withdraw this process's entries; called once at shutdown."""

    @abstractmethod
    async def connected(self, user_id: int, role: Role) -> bool:
        """Count a new socket; True when the user just came online."""

    @abstractmethod
    async def disconnected(self, user_id: int, role: Role) -> bool:
        """Count a closed socket; True when the user just went offline."""

    @abstractmethod
    async def online_moderators(self) -> set[int]:
        """Ids of moderators and admins with at least one open socket."""

    @abstractmethod
    async def is_online(self, user_id: int) -> bool: ...


class MemoryPresence(Presence):
    def __init__(self) -> None:
        self._sockets: Counter[int] = Counter()
        self._moderators: set[int] = set()

    async def connected(self, user_id: int, role: Role) -> bool:
        self._sockets[user_id] += 1
        if role in STAFF_ROLES:
            self._moderators.add(user_id)
        return self._sockets[user_id] == 1

    async def disconnected(self, user_id: int, role: Role) -> bool:
        self._sockets[user_id] -= 1
        if self._sockets[user_id] > 0:
            return False
        del self._sockets[user_id]
        self._moderators.discard(user_id)
        return True

    async def online_moderators(self) -> set[int]:
        return set(self._moderators)

    async def is_online(self, user_id: int) -> bool:
        return self._sockets[user_id] > 0


class RedisPresence(Presence):
    """Presence shared by every process through Redis.

    Each process counts its own sockets (as ``MemoryPresence`` does) and advertises the staff it
    has online in a sorted set, scored by when the entry expires. A heartbeat renews the entries,
    so the users of a process that died disappear within ``ttl`` seconds.
    """

    KEY = "chatforge:presence:moderators"

    def __init__(self, redis: Redis, *, ttl: float = 30.0) -> None:
        self.redis = redis
        self.ttl = ttl
        self.local = MemoryPresence()
        self.origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._heartbeat: asyncio.Task[None] | None = None

    def _member(self, user_id: int) -> str:
        return f"{user_id}:{self.origin}"

    async def start(self) -> None:
        self._heartbeat = asyncio.create_task(self._beat())

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        members = [self._member(u) for u in await self.local.online_moderators()]
        if members:
            with contextlib.suppress(RedisError, OSError):
                await self.redis.zrem(self.KEY, *members)

    async def _advertise(self, user_ids: set[int]) -> None:
        if not user_ids:
            return
        expires = time.time() + self.ttl
        with contextlib.suppress(RedisError, OSError):
            await self.redis.zadd(self.KEY, {self._member(u): expires for u in user_ids})

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            await self._advertise(await self.local.online_moderators())

    async def connected(self, user_id: int, role: Role) -> bool:
        first = await self.local.connected(user_id, role)
        if role in STAFF_ROLES:
            await self._advertise({user_id})
        return first

    async def disconnected(self, user_id: int, role: Role) -> bool:
        last = await self.local.disconnected(user_id, role)
        if last and role in STAFF_ROLES:
            with contextlib.suppress(RedisError, OSError):
                await self.redis.zrem(self.KEY, self._member(user_id))
        return last

    async def online_moderators(self) -> set[int]:
        try:
            members = await self.redis.zrangebyscore(self.KEY, time.time(), "+inf")
        except (RedisError, OSError):
            return await self.local.online_moderators()
        return {_user_of(member) for member in members}

    async def is_online(self, user_id: int) -> bool:
        return await self.local.is_online(user_id) or user_id in await self.online_moderators()


def _user_of(member: object) -> int:
    """The user id of a presence entry ``<user id>:<process>`` (bytes from Redis)."""
    text = member.decode() if isinstance(member, bytes) else str(member)
    return int(text.split(":", 1)[0])
