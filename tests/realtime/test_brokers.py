"""One contract for every broker: MemoryBroker in one process, RedisBroker across processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from chatforge.realtime.broker import Broker, MemoryBroker
from chatforge.realtime.envelope import Envelope
from chatforge.realtime.redis_broker import RedisBroker
from tests.servers import RedisServer, redis_server

WAIT = 5.0


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


class Inbox:
    def __init__(self) -> None:
        self.items: list[Envelope] = []
        self.arrived = asyncio.Event()

    async def deliver(self, envelope: Envelope) -> None:
        self.items.append(envelope)
        self.arrived.set()

    async def next(self) -> Envelope:
        await asyncio.wait_for(self.arrived.wait(), WAIT)
        self.arrived.clear()
        return self.items[-1]


async def started(broker: Broker, inbox: Inbox) -> Broker:
    broker.bind(inbox.deliver)
    await broker.start()
    if isinstance(broker, RedisBroker):
        for _ in range(100):
            if broker.healthy:
                break
            await asyncio.sleep(0.05)
    return broker


@pytest.fixture(params=["memory", "redis"])
async def broker_pair(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Broker, Inbox, Broker, Inbox]]:
    """Two brokers as two processes would have them (the memory broker has only one process)."""
    inbox_a, inbox_b = Inbox(), Inbox()
    if request.param == "memory":
        broker = await started(MemoryBroker(), inbox_a)
        yield broker, inbox_a, broker, inbox_a
        await broker.close()
        return
    server: RedisServer = request.getfixturevalue("redis")
    a = await started(RedisBroker(Redis.from_url(server.url)), inbox_a)
    b = await started(RedisBroker(Redis.from_url(server.url)), inbox_b)
    yield a, inbox_a, b, inbox_b
    await a.close()
    await b.close()


ENVELOPE = Envelope(
    topic="conv:7",
    frame='{"type":"chat_message","body":"héllo\\nworld"}',
    seq=3,
    audience=frozenset({1, 2}),
    exclude=None,
)


async def test_subscribers_receive_what_is_published(
    broker_pair: tuple[Broker, Inbox, Broker, Inbox],
) -> None:
    a, _, b, inbox_b = broker_pair
    await b.subscribe("conv:7")
    await asyncio.sleep(0.1)
    await a.publish(ENVELOPE)
    received = await inbox_b.next()
    assert received == ENVELOPE


async def test_other_topics_are_not_delivered(
    broker_pair: tuple[Broker, Inbox, Broker, Inbox],
) -> None:
    a, _, b, inbox_b = broker_pair
    await b.subscribe("conv:8")
    await asyncio.sleep(0.1)
    await a.publish(ENVELOPE)
    await a.publish(Envelope(topic="conv:8", frame="{}", seq=1))
    assert (await inbox_b.next()).topic == "conv:8"
    assert [e.topic for e in inbox_b.items] == ["conv:8"]


async def test_unsubscribe_stops_delivery(
    broker_pair: tuple[Broker, Inbox, Broker, Inbox],
) -> None:
    a, _, b, inbox_b = broker_pair
    await b.subscribe("conv:7")
    await b.unsubscribe("conv:7")
    await b.subscribe("presence")
    await asyncio.sleep(0.1)
    await a.publish(ENVELOPE)
    await a.publish(Envelope(topic="presence", frame="{}"))
    assert (await inbox_b.next()).topic == "presence"
    assert [e.topic for e in inbox_b.items] == ["presence"]


async def test_the_publishing_process_gets_its_own_envelope_once(
    broker_pair: tuple[Broker, Inbox, Broker, Inbox],
) -> None:
    a, inbox_a, _, _ = broker_pair
    await a.subscribe("conv:7")
    await asyncio.sleep(0.1)
    await a.publish(ENVELOPE)
    assert await inbox_a.next() == ENVELOPE
    await asyncio.sleep(0.3)
    assert inbox_a.items == [ENVELOPE]


async def test_redis_broker_reconnects_and_asks_to_catch_up(redis: RedisServer) -> None:
    inbox = Inbox()
    broker = RedisBroker(
        Redis.from_url(redis.url, socket_timeout=1, socket_connect_timeout=1), reconnect_delay=0.1
    )
    caught_up = asyncio.Event()

    async def catch_up() -> None:
        caught_up.set()

    broker.on_reconnect(catch_up)
    await started(broker, inbox)
    await broker.subscribe("conv:9")
    try:
        assert broker.healthy
        redis.stop()
        for _ in range(100):
            if not broker.healthy:
                break
            await asyncio.sleep(0.05)
        assert not broker.healthy
        # Publishing never fails, and this process's own sockets still get it.
        await broker.publish(Envelope(topic="conv:9", frame='{"during":"outage"}', seq=1))
        assert (await inbox.next()).frame == '{"during":"outage"}'
        redis.start()
        await asyncio.wait_for(caught_up.wait(), 10)
        assert broker.healthy
        other = RedisBroker(Redis.from_url(redis.url))
        await started(other, Inbox())
        await other.publish(Envelope(topic="conv:9", frame='{"after":"restart"}', seq=2))
        assert (await inbox.next()).frame == '{"after":"restart"}'
        await other.close()
    finally:
        await broker.close()


async def test_redis_broker_notices_a_frozen_server(redis: RedisServer) -> None:
    broker = RedisBroker(
        Redis.from_url(redis.url, socket_timeout=1, socket_connect_timeout=1), reconnect_delay=0.1
    )
    await started(broker, Inbox())
    try:
        redis.freeze()
        for _ in range(200):
            if not broker.healthy:
                break
            await asyncio.sleep(0.05)
        assert not broker.healthy, "a frozen Redis is detected within seconds"
    finally:
        redis.thaw()
        await broker.close()
