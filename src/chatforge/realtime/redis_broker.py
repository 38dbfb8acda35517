"""A broker between processes over Redis pub/sub.

Redis is the fast path, not the guarantee: events are in the database before they are
published, and each hub notices a missed ``seq`` and reads the gap back from there.

- Envelopes for topics this process follows are delivered here directly, then handed to a
  publisher task that sends them to Redis; the listener ignores what this process sent. So a
  sender is never held up by Redis, and local sockets keep working while Redis is away.
- When Redis stops answering (down, or frozen: no reply to a ping), the broker reports itself
  unhealthy, reconnects with backoff, subscribes again, and asks the hub to catch up every
  conversation it follows.
- A process that had to drop envelopes announces it on the control channel once Redis works
  again, and every process catches up, so a lost publish cannot leave a conversation behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from chatforge.realtime.broker import Broker
from chatforge.realtime.envelope import Envelope

log = logging.getLogger(__name__)

PREFIX = "chatforge:"
CONTROL = PREFIX + "control"
PUBLISH_QUEUE = 10_000
PONG_DEADLINE = 3.0
CATCH_UP = b"catch-up"


class RedisUnresponsive(RedisError):
    """Redis accepted our ping but did not answer in time (frozen or cut off)."""


class RedisBroker(Broker):
    def __init__(self, redis: Redis, *, reconnect_delay: float = 0.5) -> None:
        super().__init__()
        self.redis = redis
        self.origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}".encode()
        self._topics: set[str] = set()
        self._pubsub: PubSub | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._outgoing: asyncio.Queue[Envelope] = asyncio.Queue(PUBLISH_QUEUE)
        self._healthy = False
        self._reconnect_delay = reconnect_delay
        self._on_reconnect: Callable[[], Awaitable[None]] | None = None

    def on_reconnect(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Called after the connection came back: envelopes may have been missed meanwhile."""
        self._on_reconnect = callback

    @property
    def healthy(self) -> bool:
        return self._healthy

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._publish())]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        with contextlib.suppress(RedisError, OSError):
            await self.redis.aclose()

    async def publish(self, envelope: Envelope) -> None:
        if envelope.topic in self._topics and self._deliver is not None:
            await self._deliver(envelope)
        try:
            self._outgoing.put_nowait(envelope)
        except asyncio.QueueFull:
            # Redis is far behind or away: other processes recover this from the database.
            log.warning("redis publish queue full; dropping an envelope for %s", envelope.topic)

    async def subscribe(self, topic: str) -> None:
        self._topics.add(topic)
        if self._pubsub is not None and self._healthy:
            try:
                await self._pubsub.subscribe(PREFIX + topic)
            except (RedisError, OSError):
                self._healthy = False

    async def unsubscribe(self, topic: str) -> None:
        self._topics.discard(topic)
        if self._pubsub is not None and self._healthy:
            try:
                await self._pubsub.unsubscribe(PREFIX + topic)
            except (RedisError, OSError):
                self._healthy = False

    async def _publish(self) -> None:
        dropped = False
        while True:
            envelope = await self._outgoing.get()
            try:
                await self.redis.publish(
                    PREFIX + envelope.topic, self.origin + b"\n" + envelope.encode()
                )
                if dropped:
                    await self.redis.publish(CONTROL, CATCH_UP)
                    dropped = False
            except (RedisError, OSError, TimeoutError) as exc:
                self._healthy = False
                dropped = True
                log.warning("redis publish failed (%s); other processes catch up later", exc)

    async def _listen(self) -> None:
        delay = self._reconnect_delay
        first = True
        while True:
            try:
                pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                self._pubsub = pubsub
                await pubsub.subscribe(CONTROL, *(PREFIX + topic for topic in self._topics))
                self._healthy = True
                delay = self._reconnect_delay
                if not first and self._on_reconnect is not None:
                    await self._on_reconnect()
                first = False
                await self._pump(pubsub)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError) as exc:
                self._healthy = False
                log.warning("redis connection lost (%s); retrying in %.1fs", exc, delay)
                if self._pubsub is not None:
                    with contextlib.suppress(Exception):
                        await self._pubsub.aclose()  # type: ignore[no-untyped-call]
                    self._pubsub = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _pump(self, pubsub: PubSub) -> None:
        loop = asyncio.get_running_loop()
        ping_sent: float | None = None
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message is None:
                # Quiet: make sure Redis is still there. A frozen server accepts the ping but
                # never answers it.
                if ping_sent is None:
                    await asyncio.wait_for(pubsub.ping(), PONG_DEADLINE)
                    ping_sent = loop.time()
                elif loop.time() - ping_sent > PONG_DEADLINE:
                    raise RedisUnresponsive("no pong from redis")
                continue
            kind = message.get("type")
            if kind == "pong":
                ping_sent = None
                continue
            if kind != "message":
                continue
            if message.get("channel") == CONTROL.encode():
                if message.get("data") == CATCH_UP and self._on_reconnect is not None:
                    await self._on_reconnect()
                continue
            origin, _, data = bytes(message["data"]).partition(b"\n")
            if origin == self.origin or self._deliver is None:
                continue
            try:
                await self._deliver(Envelope.decode(data))
            except Exception:
                log.exception("delivering an envelope from redis failed")
