"""Who is online, counted by open sockets (S2: users see whether a moderator is online).

``MemoryPresence`` counts the sockets of this process. Across processes a Redis-backed
implementation keeps the same interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter

from chatforge.store.models import Role

STAFF_ROLES = frozenset({Role.moderator, Role.admin})


class Presence(ABC):
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
