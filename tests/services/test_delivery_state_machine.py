"""Property test of delivery: random opens, claims, sends, resends, reconnects and ends.

Runs the real services, event log, hub and WebSocket frame handling in-process on a real SQLite
file; sockets are replaced by recorders. After every step:
- every acknowledged message is stored exactly once;
- each conversation's ``seq`` runs 1..last_seq with no hole;
- every client's view of a conversation equals the database from where it subscribed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import func, select

from chatforge.context import AppContext, build_context
from chatforge.errors import ChatforgeError
from chatforge.realtime.endpoint import ClientSession
from chatforge.realtime.envelope import Envelope
from chatforge.settings import load_settings
from chatforge.store import migrate
from chatforge.store.models import Event, Message, Role, User
from tests.factories import make_user
from tests.servers import SECRET


@cache
def template() -> Path:
    path = Path(tempfile.mkdtemp()) / "chatforge.db"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


class RecordingConnection:
    """Stands in for a socket: keeps every frame pushed to it."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.user_id = user.id
        self.conversations: set[int] = set()
        self.frames: list[dict[str, Any]] = []

    def deliver(self, envelope: Envelope) -> None:
        self.push(envelope.frame)

    def push(self, frame: str) -> None:
        self.frames.append(json.loads(frame))

    def send(self, frame: dict[str, Any]) -> None:
        self.frames.append(json.loads(json.dumps(frame)))


class Client:
    def __init__(self, ctx: AppContext, user: User) -> None:
        self.ctx = ctx
        self.user = user
        self.session: ClientSession | None = None
        self.connection: RecordingConnection | None = None
        self.seen: dict[int, list[int]] = {}  # conversation -> seqs received, in order
        self.start: dict[int, int] = {}  # conversation -> after_seq of first subscribe
        self.acks: list[dict[str, Any]] = []

    async def connect(self) -> None:
        self.connection = RecordingConnection(self.user)
        self.session = ClientSession(self.ctx, self.connection)  # type: ignore[arg-type]
        await self.session.open()
        for conversation_id in list(self.seen):
            await self.subscribe(conversation_id)

    async def disconnect(self) -> None:
        assert self.session is not None and self.connection is not None
        self.collect()
        await self.session.close()
        self.session = self.connection = None

    async def frame(self, frame: dict[str, Any]) -> None:
        assert self.session is not None
        await self.session.handle_text(json.dumps(frame))
        self.collect()

    async def subscribe(self, conversation_id: int) -> None:
        seqs = self.seen.setdefault(conversation_id, [])
        after = seqs[-1] if seqs else self.start.setdefault(conversation_id, 0)
        await self.frame(
            {"type": "subscribe", "conversation_id": conversation_id, "after_seq": after}
        )

    def collect(self) -> None:
        if self.connection is None:
            return
        for frame in self.connection.frames:
            if frame["type"] == "ack":
                self.acks.append(frame)
                continue
            conversation_id, seq = frame.get("conversation_id"), frame.get("seq")
            if isinstance(seq, int) and conversation_id in self.seen:
                self.seen[conversation_id].append(seq)
        self.connection.frames.clear()


class DeliveryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp())
        config = load_settings(data_dir=self.dir, secret_key=SECRET, max_active_per_moderator=3)
        config.check()
        shutil.copyfile(template(), self.dir / "chatforge.db")
        self.ctx = build_context(config)
        self.run(self.ctx.start())
        admin = self.run(make_user(self.ctx, Role.admin))
        self.topic = self.run(self.ctx.topics.create(admin, name="Delivery")).id
        self.users = [Client(self.ctx, self.run(make_user(self.ctx, Role.user))) for _ in range(3)]
        self.moderators = [
            Client(self.ctx, self.run(make_user(self.ctx, Role.moderator))) for _ in range(2)
        ]
        for client in self.users + self.moderators:
            self.run(client.connect())
        self.conversations: dict[int, int] = {}  # conversation -> owner index
        self.counter = 0

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        self.run(self.ctx.close())
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(owner=st.integers(0, 2))
    def open(self, owner: int) -> None:
        client = self.users[owner]
        result = self.run(self.ctx.support.open(client.user, self.topic))
        self.conversations[result.conversation.id] = owner
        if client.session is not None:
            self.run(client.subscribe(result.conversation.id))

    @precondition(lambda self: self.conversations)
    @rule(moderator=st.integers(0, 1), pick=st.integers(0, 100))
    def claim(self, moderator: int, pick: int) -> None:
        conversation_id = sorted(self.conversations)[pick % len(self.conversations)]
        client = self.moderators[moderator]
        try:
            self.run(self.ctx.support.claim(client.user, conversation_id))
        except ChatforgeError:
            return
        if client.session is not None:
            self.run(client.subscribe(conversation_id))

    @precondition(lambda self: self.conversations)
    @rule(pick=st.integers(0, 100), by_moderator=st.booleans(), resend=st.booleans())
    def send(self, pick: int, by_moderator: bool, resend: bool) -> None:
        conversation_id = sorted(self.conversations)[pick % len(self.conversations)]
        owner = self.users[self.conversations[conversation_id]]
        client = self.moderators[pick % 2] if by_moderator else owner
        if client.session is None:
            return
        mine = [a["client_id"] for a in client.acks if a["conversation_id"] == conversation_id]
        if resend and mine:
            client_id = mine[0]
        else:
            self.counter += 1
            client_id = f"c{self.counter}"
        self.run(
            client.frame(
                {
                    "type": "chat_message",
                    "conversation_id": conversation_id,
                    "body": f"message {client_id}",
                    "client_id": client_id,
                }
            )
        )

    @rule(index=st.integers(0, 4))
    def reconnect(self, index: int) -> None:
        client = (self.users + self.moderators)[index]
        if client.session is not None:
            self.run(client.disconnect())
        self.run(client.connect())

    @rule(index=st.integers(0, 4))
    def drop(self, index: int) -> None:
        client = (self.users + self.moderators)[index]
        if client.session is not None:
            self.run(client.disconnect())

    @precondition(lambda self: self.conversations)
    @rule(pick=st.integers(0, 100))
    def end(self, pick: int) -> None:
        conversation_id = sorted(self.conversations)[pick % len(self.conversations)]
        owner = self.users[self.conversations[conversation_id]]
        with contextlib.suppress(ChatforgeError):  # ending twice is refused, and fine here
            self.run(self.ctx.support.end(owner.user, conversation_id))

    async def database(
        self,
    ) -> tuple[dict[int, list[int]], dict[tuple[int, int, str], tuple[int, int]]]:
        async with self.ctx.db.read() as session:
            seqs: dict[int, list[int]] = {}
            for conversation_id, seq in await session.execute(
                select(Event.conversation_id, Event.seq).order_by(Event.conversation_id, Event.seq)
            ):
                seqs.setdefault(conversation_id, []).append(seq)
            stored = {
                (c, s, k): (q, i)
                for c, s, k, q, i in await session.execute(
                    select(
                        Message.conversation_id,
                        Message.sender_id,
                        Message.client_id,
                        Message.seq,
                        Message.id,
                    )
                )
            }
            duplicates = await session.scalar(
                select(func.count()).select_from(
                    select(Message.client_id)
                    .group_by(Message.conversation_id, Message.sender_id, Message.client_id)
                    .having(func.count() > 1)
                    .subquery()
                )
            )
            assert duplicates == 0
        return seqs, stored

    @invariant()
    def delivery_is_exact(self) -> None:
        seqs, stored = self.run(self.database())
        for client in self.users + self.moderators:
            client.collect()
        for numbers in seqs.values():
            assert numbers == list(range(1, len(numbers) + 1)), "no holes in seq"
        for client in self.users + self.moderators:
            for conversation_id, seen in client.seen.items():
                start = client.start.get(conversation_id, 0)
                expected = [s for s in seqs.get(conversation_id, []) if s > start]
                if client.session is not None:
                    assert seen == expected, f"client {client.user.id} view of {conversation_id}"
                else:
                    assert seen == expected[: len(seen)], "an offline client saw a prefix"
        # Every ack names the one stored message of its (conversation, sender, client_id).
        for client in self.users + self.moderators:
            for ack in client.acks:
                key = (ack["conversation_id"], client.user.id, ack["client_id"])
                assert stored[key] == (ack["seq"], ack["message_id"])


DeliveryMachine.TestCase.settings = settings(
    max_examples=10,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestDelivery = DeliveryMachine.TestCase
