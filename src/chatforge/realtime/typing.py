"""Typing indicators: ephemeral, never logged, and stopped by the server when they go stale.

A ``typing_start`` holds for ``TYPING_TTL`` seconds; each new start renews it. The server sends
``typing_stop`` itself when it expires or when the typist's socket closes, so a dropped client
never leaves "is typing..." behind.
"""

from __future__ import annotations

import asyncio

from chatforge.realtime.broker import Broker
from chatforge.realtime.envelope import Envelope, conversation_topic, dumps

TYPING_TTL = 5.0


class TypingTracker:
    def __init__(self, broker: Broker, ttl: float = TYPING_TTL) -> None:
        self.broker = broker
        self.ttl = ttl
        self._timers: dict[tuple[int, int], asyncio.TimerHandle] = {}
        self._expiring: set[asyncio.Task[None]] = set()

    async def start(self, conversation_id: int, user_id: int, name: str) -> None:
        key = (conversation_id, user_id)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        else:
            await self._signal("typing_start", conversation_id, user_id, name)
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(self.ttl, self._expire, conversation_id, user_id, name)

    def _expire(self, conversation_id: int, user_id: int, name: str) -> None:
        task = asyncio.get_running_loop().create_task(self.stop(conversation_id, user_id, name))
        self._expiring.add(task)
        task.add_done_callback(self._expiring.discard)

    async def stop(self, conversation_id: int, user_id: int, name: str) -> None:
        timer = self._timers.pop((conversation_id, user_id), None)
        if timer is None:
            return
        timer.cancel()
        await self._signal("typing_stop", conversation_id, user_id, name)

    async def stop_all(self, user_id: int, name: str) -> None:
        """The user's socket closed: end every indicator they had."""
        for conversation_id, typist in [key for key in self._timers if key[1] == user_id]:
            await self.stop(conversation_id, typist, name)

    async def _signal(self, kind: str, conversation_id: int, user_id: int, name: str) -> None:
        frame = {"type": kind, "conversation_id": conversation_id, "user_id": user_id, "name": name}
        await self.broker.publish(
            Envelope(topic=conversation_topic(conversation_id), frame=dumps(frame), exclude=user_id)
        )
