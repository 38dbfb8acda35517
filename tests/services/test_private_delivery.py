"""Private messages in big rooms: the audience is fixed once when the message is written, and
the hub filters deliveries by it in memory, with no database work per recipient."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from chatforge.realtime.broker import MemoryBroker
from chatforge.realtime.envelope import Envelope, conversation_topic
from chatforge.realtime.hub import Hub
from chatforge.store.models import Participant, Role, User
from tests.conftest import Api


class CountingHistory:
    def __init__(self) -> None:
        self.calls = 0

    async def last_seq(self, conversation_id: int) -> int:
        self.calls += 1
        return 0

    async def between(self, conversation_id: int, after: int, upto: int) -> list[Envelope]:
        self.calls += 1
        return []


class Recorder:
    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self.frames: list[str] = []

    def deliver(self, envelope: Envelope) -> None:
        self.push(envelope.frame)

    def push(self, frame: str) -> None:
        self.frames.append(frame)


async def test_hub_delivers_a_private_envelope_to_its_audience_only_without_reads() -> None:
    history = CountingHistory()
    hub = Hub(MemoryBroker(), history)
    sockets = [Recorder(user_id) for user_id in range(1, 1001)]
    for socket in sockets:
        hub.go_live(await hub.attach(socket, 7), 0)
    reads_before = history.calls
    private = Envelope(
        topic=conversation_topic(7),
        frame='{"type":"private_message"}',
        seq=1,
        audience=frozenset({3, 500, 999}),
    )
    public = Envelope(topic=conversation_topic(7), frame='{"type":"chat_message"}', seq=2)
    await hub.broker.publish(private)
    await hub.broker.publish(public)
    assert history.calls == reads_before
    got_private = [s.user_id for s in sockets if '{"type":"private_message"}' in s.frames]
    assert got_private == [3, 500, 999]
    assert all(len(s.frames) == (2 if s.user_id in (3, 500, 999) else 1) for s in sockets)


def _room(api: Api, members: int) -> tuple[int, User, User]:
    instructor = api.user(Role.moderator)
    created = api.client.post(
        "/api/sessions", json={"title": "Big"}, headers=api.auth(instructor)
    ).json()
    alice = api.user()
    api.client.post(f"/api/sessions/{created['id']}/join", headers=api.auth(alice))

    async def fill() -> None:
        async with api.ctx.db.write() as session:
            for n in range(members):
                user = User(username=f"crowd{created['id']}x{n}", display_name=f"C{n}")
                session.add(user)
                await session.flush()
                session.add(Participant(conversation_id=created["id"], user_id=user.id))

    api.client.portal.call(fill)  # type: ignore[union-attr]
    return created["id"], instructor, alice


def _statements_to_send_privately(api: Api, members: int) -> int:
    room_id, instructor, alice = _room(api, members)
    statements: list[Any] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    engine = api.ctx.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        sent = api.client.post(
            f"/api/conversations/{room_id}/messages",
            json={"body": "just for you", "recipient_id": instructor.id},
            headers=api.auth(alice),
        )
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert sent.status_code == 201, sent.text
    return len(statements)


def test_sending_privately_costs_the_same_in_a_room_of_3_or_300(api: Api) -> None:
    assert _statements_to_send_privately(api, 1) == _statements_to_send_privately(api, 300)
