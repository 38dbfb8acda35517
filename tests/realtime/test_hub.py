"""The hub on its own: ordering, gap filling, and the moment subscriptions may start."""

from __future__ import annotations

import asyncio

from chatforge.realtime.broker import MemoryBroker
from chatforge.realtime.envelope import Envelope, conversation_topic
from chatforge.realtime.hub import Hub


class Recorder:
    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self.frames: list[str] = []

    def deliver(self, envelope: Envelope) -> None:
        self.push(envelope.frame)

    def push(self, frame: str) -> None:
        self.frames.append(frame)


def envelope(seq: int) -> Envelope:
    return Envelope(topic=conversation_topic(1), frame=f"e{seq}", seq=seq)


class SlowHistory:
    """The event log, whose first read can be held back by the test."""

    def __init__(self, last: int) -> None:
        self.last = last
        self.gate = asyncio.Event()

    async def last_seq(self, conversation_id: int) -> int:
        await self.gate.wait()
        return self.last

    async def last_seqs(self, conversation_ids: list[int]) -> dict[int, int]:
        return dict.fromkeys(conversation_ids, self.last)

    async def between(self, conversation_id: int, after: int, upto: int) -> list[Envelope]:
        return [envelope(seq) for seq in range(after + 1, upto)]


async def test_a_second_subscriber_waits_until_the_feed_knows_its_last_seq() -> None:
    history = SlowHistory(last=5)
    hub = Hub(MemoryBroker(), history)
    first = asyncio.create_task(hub.attach(Recorder(1), 1))
    await asyncio.sleep(0)
    second = asyncio.create_task(hub.attach(Recorder(2), 1))
    await asyncio.sleep(0.01)
    # Had the second subscription started now, its replay could end before seq 5 while the
    # feed later drops envelopes up to 5 as already committed: those events would be lost.
    assert not second.done()
    history.gate.set()
    await asyncio.gather(first, second)


async def test_out_of_order_and_missing_envelopes_are_delivered_once_in_order() -> None:
    history = SlowHistory(last=0)
    history.gate.set()
    broker = MemoryBroker()
    hub = Hub(broker, history)
    socket = Recorder(1)
    subscription = await hub.attach(socket, 1)
    hub.go_live(subscription, 0)
    for seq in (2, 1, 3, 3, 5):  # 2 arrives first (1 is read back), 4 never arrives
        await broker.publish(envelope(seq))
    assert socket.frames == ["e1", "e2", "e3", "e4", "e5"]


async def test_envelopes_during_a_replay_are_flushed_after_it_without_duplicates() -> None:
    history = SlowHistory(last=0)
    history.gate.set()
    broker = MemoryBroker()
    hub = Hub(broker, history)
    socket = Recorder(1)
    subscription = await hub.attach(socket, 1)
    for seq in (1, 2, 3):
        await broker.publish(envelope(seq))
    assert socket.frames == []  # still replaying: buffered
    socket.frames += ["e1", "e2"]  # the replay read the database up to seq 2
    hub.go_live(subscription, 2)
    assert socket.frames == ["e1", "e2", "e3"]


async def test_private_envelopes_reach_only_their_audience() -> None:
    history = SlowHistory(last=0)
    history.gate.set()
    broker = MemoryBroker()
    hub = Hub(broker, history)
    sockets = [Recorder(user_id) for user_id in (1, 2, 3)]
    for socket in sockets:
        hub.go_live(await hub.attach(socket, 1), 0)
    await broker.publish(
        Envelope(topic=conversation_topic(1), frame="secret", seq=1, audience=frozenset({1, 3}))
    )
    assert [s.frames for s in sockets] == [["secret"], [], ["secret"]]
