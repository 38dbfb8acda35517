"""The hub: this process's sockets, by topic, and the fan-out of envelopes to them.

For conversations it also keeps delivery exact. Envelopes may reach the hub out of order or not
at all (two commits published in the opposite order, a broker between processes dropping one);
each conversation's feed knows the last ``seq`` it delivered, reads any missing events back from
the database, and drops what it has already delivered. A subscriber that is still replaying
history buffers live envelopes until its replay is sent, so nothing is missed or sent twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from chatforge.realtime.broker import Broker
from chatforge.realtime.envelope import Envelope, conversation_topic


class Connection(Protocol):
    """One client socket, as the hub sees it."""

    user_id: int

    def deliver(self, envelope: Envelope) -> None:
        """Send ``envelope``'s frame (its prebuilt ``wire`` bytes); never blocks."""


class History(Protocol):
    """The event log, as the hub needs it to close gaps."""

    async def last_seq(self, conversation_id: int) -> int: ...

    async def last_seqs(self, conversation_ids: list[int]) -> dict[int, int]:
        """The last ``seq`` of several conversations, in one query."""
        ...

    async def between(self, conversation_id: int, after: int, upto: int) -> list[Envelope]:
        """Envelopes of the events with ``after < seq < upto``, in order."""
        ...


@dataclass(eq=False)
class Subscription:
    connection: Connection
    cursor: int = 0
    buffer: list[Envelope] | None = field(default_factory=list)

    def offer(self, envelope: Envelope) -> None:
        if self.buffer is not None:
            self.buffer.append(envelope)
            return
        seq = envelope.seq
        if seq is not None:
            if seq <= self.cursor:
                return
            self.cursor = seq
        if envelope.visible_to(self.connection.user_id):
            self.connection.deliver(envelope)


@dataclass(eq=False)
class Feed:
    conversation_id: int
    last_seq: int = 0
    subscribers: dict[Connection, Subscription] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Hub:
    def __init__(self, broker: Broker, history: History) -> None:
        self.broker = broker
        self.history = history
        self._topics: dict[str, set[Connection]] = {}
        self._feeds: dict[int, Feed] = {}
        broker.bind(self.deliver)

    # -- plain topics (queue, presence, per-user notices) ---------------------------------------

    async def join(self, connection: Connection, topic: str) -> None:
        members = self._topics.get(topic)
        if members is None:
            members = self._topics[topic] = set()
            await self.broker.subscribe(topic)
        members.add(connection)

    async def leave(self, connection: Connection, topic: str) -> None:
        members = self._topics.get(topic)
        if members is None:
            return
        members.discard(connection)
        if not members:
            del self._topics[topic]
            await self.broker.unsubscribe(topic)

    # -- conversations ------------------------------------------------------------------------

    async def attach(self, connection: Connection, conversation_id: int) -> Subscription:
        """Start receiving a conversation's events, buffered until ``go_live``.

        The feed's ``last_seq`` is read once, when the feed is created; envelopes at or below it
        are dropped later as already committed. So a subscription may only start after that
        read (its replay then covers them): a second subscriber arriving while the first is
        still creating the feed waits for the feed's lock.
        """
        while True:
            feed = self._feeds.get(conversation_id)
            if feed is None:
                feed = self._feeds[conversation_id] = Feed(conversation_id)
                async with feed.lock:
                    try:
                        await self.broker.subscribe(conversation_topic(conversation_id))
                        feed.last_seq = await self.history.last_seq(conversation_id)
                    except BaseException:
                        del self._feeds[conversation_id]
                        raise
            async with feed.lock:
                if self._feeds.get(conversation_id) is not feed:
                    continue  # the feed was dropped while we waited: start over
                existing = feed.subscribers.get(connection)
                if existing is not None:
                    return existing
                subscription = Subscription(connection)
                feed.subscribers[connection] = subscription
                return subscription

    def go_live(self, subscription: Subscription, replayed_upto: int) -> None:
        """The replay up to ``replayed_upto`` is sent: flush what arrived meanwhile, then stream."""
        pending = subscription.buffer or []
        subscription.buffer = None
        subscription.cursor = max(subscription.cursor, replayed_upto)
        for envelope in pending:
            subscription.offer(envelope)

    async def detach(self, connection: Connection, conversation_id: int) -> None:
        feed = self._feeds.get(conversation_id)
        if feed is None or feed.subscribers.pop(connection, None) is None:
            return
        if not feed.subscribers:
            del self._feeds[conversation_id]
            await self.broker.unsubscribe(conversation_topic(conversation_id))

    async def disconnect(self, connection: Connection) -> None:
        """Forget a closed socket everywhere."""
        for topic in [t for t, members in self._topics.items() if connection in members]:
            await self.leave(connection, topic)
        for conversation_id in [c for c, f in self._feeds.items() if connection in f.subscribers]:
            await self.detach(connection, conversation_id)

    def subscribers(self, conversation_id: int) -> Iterable[Connection]:
        feed = self._feeds.get(conversation_id)
        return list(feed.subscribers) if feed else []

    async def catch_up(self) -> None:
        """Deliver whatever was committed but never reached this process.

        Called when the broker comes back after an outage, when another process says it dropped
        envelopes, and every few seconds with a broker between processes (a process killed
        between its commit and its publish says nothing). One query covers every feed.
        """
        if not self._feeds:
            return
        latest = await self.history.last_seqs(list(self._feeds))
        for conversation_id, last in latest.items():
            feed = self._feeds.get(conversation_id)
            if feed is None or last <= feed.last_seq:
                continue
            async with feed.lock:
                if last <= feed.last_seq:
                    continue
                for missing in await self.history.between(
                    feed.conversation_id, feed.last_seq, last + 1
                ):
                    self._fan_out(feed, missing)
                feed.last_seq = last

    # -- delivery -------------------------------------------------------------------------------

    async def deliver(self, envelope: Envelope) -> None:
        """Called by the broker for every envelope of a topic this process subscribed to."""
        if not envelope.topic.startswith("conv:"):
            for connection in list(self._topics.get(envelope.topic, ())):
                if envelope.visible_to(connection.user_id):
                    connection.deliver(envelope)
            return
        feed = self._feeds.get(int(envelope.topic[5:]))
        if feed is None:
            return
        async with feed.lock:
            seq = envelope.seq
            if seq is None:
                self._fan_out(feed, envelope)
                return
            if seq <= feed.last_seq:
                return
            if seq > feed.last_seq + 1:
                # Events committed earlier were not (yet) published here: read them back.
                for missing in await self.history.between(feed.conversation_id, feed.last_seq, seq):
                    self._fan_out(feed, missing)
            self._fan_out(feed, envelope)
            feed.last_seq = seq

    @staticmethod
    def _fan_out(feed: Feed, envelope: Envelope) -> None:
        # The hottest loop of the server, once per event and subscriber: Subscription.offer
        # and Envelope.visible_to written out inline, and the frame's bytes built already.
        seq, audience, exclude = envelope.seq, envelope.audience, envelope.exclude
        for subscription in list(feed.subscribers.values()):
            if subscription.buffer is not None:
                subscription.buffer.append(envelope)
                continue
            if seq is not None:
                if seq <= subscription.cursor:
                    continue
                subscription.cursor = seq
            connection = subscription.connection
            user_id = connection.user_id
            if user_id == exclude or (audience is not None and user_id not in audience):
                continue
            connection.deliver(envelope)
