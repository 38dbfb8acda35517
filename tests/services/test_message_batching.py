"""The batched message writer through ``MessageService.post``: what it acks is what committed.

Concurrent posts into support conversations share transactions (group commit); these tests
check the outcome of that, never its timing: acks match rows, seqs have no hole, resends store
nothing, a refused message fails alone, events go out after the commit and in seq order, and a
batch that fails as a whole is retried message by message. The core cases run on PostgreSQL too.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError

from chatforge.context import AppContext, build_context
from chatforge.errors import (
    ChatforgeError,
    Conflict,
    Forbidden,
    Invalid,
    Muted,
    NotFound,
    RateLimited,
    TryAgain,
)
from chatforge.realtime.envelope import Envelope, conversation_topic
from chatforge.services import message_writer
from chatforge.services.eventlog import envelope_of
from chatforge.services.message_writer import (
    Draft,
    Stored,
    _room_facts,
    flush_drafts,
    load_conversations,
)
from chatforge.services.messages import PostedMessage, PostResult
from chatforge.settings import Settings, load_settings
from chatforge.store import migrate
from chatforge.store.bulk import MAX_IN
from chatforge.store.group_commit import GroupCommit, in_one_transaction
from chatforge.store.models import Conversation, Event, Message, Participant, Role, Topic, User
from chatforge.store.session_models import ProfanityStrike
from chatforge.store.write_lane import Statements
from tests.factories import make_topic, make_user
from tests.servers import SECRET
from tests.store.test_postgres import create_database

ItemT = TypeVar("ItemT")
TIMEOUT = 30  # seconds: the one timeout unit of the async tests here
_databases = itertools.count(1)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, settings: Settings, tmp_path: Path) -> Settings:
    """The test's settings on a fresh SQLite file, or on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return settings
    url = create_database(
        request.getfixturevalue("postgres_url"), f"chatforge_batching_{next(_databases)}"
    )
    migrate.upgrade(url)
    return load_settings(data_dir=tmp_path, database_url=url, secret_key=SECRET)


@pytest.fixture
async def ctx(backend: Settings) -> AsyncIterator[AppContext]:
    context = build_context(backend)
    try:
        yield context
    finally:
        await context.close()


@dataclass
class Support:
    conversation_id: int
    owner: User
    moderator: User


async def open_support(ctx: AppContext, topic: Topic) -> Support:
    """A support conversation claimed by a moderator of its own (one active each)."""
    owner, moderator = await make_user(ctx), await make_user(ctx, Role.moderator)
    conversation = (await ctx.support.open(owner, topic.id)).conversation
    await ctx.support.claim(moderator, conversation.id)
    return Support(conversation.id, owner, moderator)


@pytest.fixture
async def topic(ctx: AppContext) -> Topic:
    return await make_topic(ctx, await make_user(ctx, Role.admin))


class Published:
    """Records what reaches the broker, and whether its message was committed by then."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.envelopes: list[Envelope] = []
        self.committed: list[bool] = []

    async def __call__(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)
        message_id = _frame(envelope).get("message_id")
        if message_id is not None:
            async with self.ctx.db.read() as session:
                found = await session.get(Message, message_id)
            self.committed.append(found is not None)

    def of(self, conversation_id: int) -> list[Envelope]:
        return [e for e in self.envelopes if e.topic == conversation_topic(conversation_id)]


@pytest.fixture
def published(ctx: AppContext, monkeypatch: pytest.MonkeyPatch) -> Published:
    """What the test's context publishes from now on."""
    recorder = Published(ctx)
    monkeypatch.setattr(ctx.broker, "publish", recorder)
    return recorder


def _frame(envelope: Envelope) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(envelope.frame)
    return frame


class Batches:
    """Watches the writer: the drafts of each batch, and drafts retried alone after a batch
    failed (which would hide a batch that got a case wrong behind the one-message path)."""

    def __init__(self, ctx: AppContext, *, failures: Sequence[Exception] = ()) -> None:
        self.drafts: list[list[Draft]] = []
        self.retried: list[Draft] = []
        group = ctx.messages.writer.group
        fallback = group.fallback
        assert fallback is not None
        # Raised by the first batches after they wrote everything, before their commit.
        failing = iter(failures)

        def flush_and_record(statements: Statements, drafts: Sequence[Draft]) -> list[Any]:
            self.drafts.append(list(drafts))
            results = list(flush_drafts(statements, drafts))
            error = next(failing, None)
            if error is not None:
                raise error
            return results

        async def retry_and_record(draft: Draft) -> Stored:
            self.retried.append(draft)
            return await fallback(draft)

        group.commit = in_one_transaction(ctx.db, flush_and_record)
        group.fallback = retry_and_record

    @property
    def sizes(self) -> list[int]:
        return [len(drafts) for drafts in self.drafts]


async def rows(ctx: AppContext, conversation_id: int) -> list[Message]:
    async with ctx.db.read() as session:
        return list(
            await session.scalars(select(Message).where(Message.conversation_id == conversation_id))
        )


async def events(ctx: AppContext, conversation_id: int) -> list[Event]:
    async with ctx.db.read() as session:
        return list(
            await session.scalars(
                select(Event).where(Event.conversation_id == conversation_id).order_by(Event.seq)
            )
        )


async def conversation(ctx: AppContext, conversation_id: int) -> Conversation:
    async with ctx.db.read() as session:
        found = await session.get(Conversation, conversation_id)
    assert found is not None
    return found


async def check_log(ctx: AppContext, conversation_id: int) -> list[Event]:
    """Every seq 1..last_seq has exactly one event, and each message its own event."""
    logged = await events(ctx, conversation_id)
    last_seq = (await conversation(ctx, conversation_id)).last_seq
    assert [e.seq for e in logged] == list(range(1, last_seq + 1))
    by_seq = {e.seq: e for e in logged}
    for message in await rows(ctx, conversation_id):
        assert by_seq[message.seq].type == "chat_message"
        assert by_seq[message.seq].payload["message_id"] == message.id
        assert by_seq[message.seq].payload["body"] == message.body
    return logged


async def gather(*posts: Any) -> list[Any]:
    return list(await asyncio.wait_for(asyncio.gather(*posts, return_exceptions=True), TIMEOUT))


async def test_concurrent_posts_get_gapless_seqs_and_acks_that_match_the_rows(
    ctx: AppContext, topic: Topic, published: Published
) -> None:
    supports = [await open_support(ctx, topic) for _ in range(3)]
    before = {
        s.conversation_id: (await conversation(ctx, s.conversation_id)).last_seq for s in supports
    }

    def body(n: int) -> str:
        # Quotes, a backslash, non-ASCII and a line break: the frame splices the payload's
        # JSON in as text, and must still equal the replayed frame to the byte.
        return f'hello {n} "quoted" \\ é 🙂\nbye'

    def post(n: int) -> Any:
        support = supports[n % 3]
        sender = support.owner if n % 2 else support.moderator
        return ctx.messages.post(sender, support.conversation_id, body(n), client_id=f"c{n}")

    batches = Batches(ctx)
    acks: list[PostResult] = await gather(*(post(n) for n in range(200)))

    assert all(isinstance(ack, PostResult) and not ack.duplicate for ack in acks)
    assert sum(batches.sizes) == 200 and batches.retried == []
    for index, support in enumerate(supports):
        mine = [ack for n, ack in enumerate(acks) if n % 3 == index]
        stored = {m.id: m for m in await rows(ctx, support.conversation_id)}
        assert len(stored) == len(mine)
        for n, ack in ((n, a) for n, a in enumerate(acks) if n % 3 == index):
            assert stored[ack.message_id].seq == ack.seq
            assert stored[ack.message_id].body == body(n)
        seqs = sorted(ack.seq for ack in mine)
        assert seqs == list(range(before[support.conversation_id] + 1, seqs[-1] + 1))
        logged = await check_log(ctx, support.conversation_id)
        # Published after the commit, in seq order, with the frame a replay builds from the row.
        sent = [e for e in published.of(support.conversation_id) if e.seq in set(seqs)]
        assert [e.seq for e in sent] == seqs
        assert [e.frame for e in sent] == [
            envelope_of(e).frame for e in logged if e.seq in set(seqs)
        ]
        assert all(e.audience is None for e in logged if e.seq in set(seqs))
    assert published.committed and all(published.committed)


async def test_resends_in_and_across_batches_store_one_message(
    ctx: AppContext, topic: Topic
) -> None:
    support = await open_support(ctx, topic)
    batches = Batches(ctx)
    first, again, other, third = await gather(
        ctx.messages.post(support.owner, support.conversation_id, "hi", client_id="same"),
        ctx.messages.post(support.owner, support.conversation_id, "hi", client_id="same"),
        ctx.messages.post(support.moderator, support.conversation_id, "yo", client_id="same"),
        ctx.messages.post(support.owner, support.conversation_id, "hi", client_id="same"),
    )
    later = await ctx.messages.post(support.owner, support.conversation_id, "hi", client_id="same")

    assert batches.sizes == [4, 1] and batches.retried == []
    assert not first.duplicate and not other.duplicate  # a client_id is per sender
    for resend in (again, third, later):
        assert resend == PostResult(first.seq, first.message_id, duplicate=True)
    assert sorted(m.body for m in await rows(ctx, support.conversation_id)) == ["hi", "yo"]
    await check_log(ctx, support.conversation_id)


async def test_a_refused_message_fails_alone_while_its_batch_commits(
    ctx: AppContext, topic: Topic
) -> None:
    support, closed, elsewhere = [await open_support(ctx, topic) for _ in range(3)]
    await ctx.support.end(closed.owner, closed.conversation_id)
    parent = await ctx.messages.post(support.owner, support.conversation_id, "parent")
    foreign = await ctx.messages.post(elsewhere.owner, elsewhere.conversation_id, "foreign")
    outsider = await make_user(ctx)
    cid = support.conversation_id
    batches = Batches(ctx)
    results = await gather(
        ctx.messages.post(support.owner, cid, "one"),
        ctx.messages.post(closed.owner, closed.conversation_id, "too late"),
        ctx.messages.post(outsider, cid, "let me in"),
        ctx.messages.post(support.owner, 999_999, "nowhere"),
        ctx.messages.post(support.owner, cid, "bad reply", reply_to=foreign.message_id),
        ctx.messages.post(support.owner, cid, "no such parent", reply_to=999_999),
        ctx.messages.post(support.owner, cid, "private", recipient_id=support.moderator.id),
        ctx.messages.post(support.moderator, cid, "good reply", reply_to=parent.message_id),
        ctx.messages.post(support.owner, cid, "two"),
    )

    assert batches.sizes == [9] and batches.retried == []  # all in one transaction
    codes = [r.code if isinstance(r, ChatforgeError) else None for r in results]
    assert codes == [
        None,
        "conversation_closed",
        "not_a_participant",
        "conversation_not_found",
        "invalid_reply_to",
        "invalid_reply_to",
        "invalid_recipient",
        None,
        None,
    ]
    assert isinstance(results[1], Conflict) and isinstance(results[2], Forbidden)
    assert isinstance(results[3], NotFound) and isinstance(results[4], Invalid)
    stored = {m.body: m for m in await rows(ctx, cid)}
    assert sorted(stored) == ["good reply", "one", "parent", "two"]
    assert stored["good reply"].reply_to_id == parent.message_id
    assert [m.body for m in await rows(ctx, closed.conversation_id)] == []
    await check_log(ctx, cid)


async def test_listeners_hear_new_messages_once_and_never_a_resend(
    ctx: AppContext, topic: Topic
) -> None:
    heard: list[PostedMessage] = []

    async def listener(posted: PostedMessage) -> None:
        heard.append(posted)

    ctx.messages.listen(listener)
    support = await open_support(ctx, topic)
    cid = support.conversation_id
    acks = await gather(
        ctx.messages.post(support.moderator, cid, "hello", client_id="a"),
        ctx.messages.post(support.moderator, cid, "hello", client_id="a"),
        ctx.messages.post(support.owner, cid, "hi"),
    )

    assert len(heard) == 2
    assert {(p.message_id, p.seq) for p in heard} == {
        (a.message_id, a.seq) for a in acks if not a.duplicate
    }
    relay = next(p for p in heard if p.sender_id == support.moderator.id)
    assert (relay.kind, relay.channel, relay.owner_id, relay.body) == (
        "support",
        "web",
        support.owner.id,
        "hello",
    )


async def test_the_assignees_first_answer_is_recorded(ctx: AppContext, topic: Topic) -> None:
    support = await open_support(ctx, topic)
    await ctx.messages.post(support.owner, support.conversation_id, "help")
    assert (await conversation(ctx, support.conversation_id)).first_response_at is None

    await gather(
        ctx.messages.post(support.moderator, support.conversation_id, "here"),
        ctx.messages.post(support.moderator, support.conversation_id, "and here"),
    )

    first = (await conversation(ctx, support.conversation_id)).first_response_at
    answer = next(m for m in await rows(ctx, support.conversation_id) if m.body == "here")
    assert first == answer.created_at


async def test_a_batch_that_fails_before_its_commit_is_stored_message_by_message(
    ctx: AppContext, topic: Topic, published: Published
) -> None:
    support = await open_support(ctx, topic)
    cid = support.conversation_id
    batches = Batches(ctx, failures=[RuntimeError("commit lost")])
    acks = await gather(
        *(ctx.messages.post(support.owner, cid, f"m{n}", client_id=f"m{n}") for n in range(8))
    )

    assert all(isinstance(ack, PostResult) and not ack.duplicate for ack in acks)
    assert batches.sizes == [8] and len(batches.retried) == 8
    stored = {m.id: m for m in await rows(ctx, cid)}
    assert sorted(m.body for m in stored.values()) == sorted(f"m{n}" for n in range(8))
    assert all(stored[ack.message_id].seq == ack.seq for ack in acks)
    await check_log(ctx, cid)
    # Each message announced once, none from the batch that rolled back.
    sent = [
        _frame(e).get("message_id") for e in published.of(cid) if e.seq in {a.seq for a in acks}
    ]
    assert sorted(sent) == sorted(ack.message_id for ack in acks)


async def test_a_message_the_database_refuses_fails_alone_after_the_batch_fails(
    ctx: AppContext, topic: Topic
) -> None:
    support = await open_support(ctx, topic)
    cid = support.conversation_id
    refuse = (
        "CREATE TRIGGER poison BEFORE INSERT ON messages WHEN NEW.body = 'poison' "
        "BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
        if ctx.db.is_sqlite
        else "ALTER TABLE messages ADD CONSTRAINT poison CHECK (body <> 'poison')"
    )
    async with ctx.db.write() as session:
        await session.execute(text(refuse))
    batches = Batches(ctx)
    results = await gather(
        *(ctx.messages.post(support.owner, cid, body) for body in ["a", "b", "poison", "c"])
    )

    assert isinstance(results[2], IntegrityError)
    assert batches.sizes == [4] and len(batches.retried) == 4
    acks = [r for r in results if isinstance(r, PostResult)]
    assert len(acks) == 3
    stored = {m.id: m for m in await rows(ctx, cid)}
    assert sorted(m.body for m in stored.values()) == ["a", "b", "c"]
    assert all(stored[ack.message_id].seq == ack.seq for ack in acks)
    await check_log(ctx, cid)


async def test_a_cancelled_poster_does_not_disturb_the_others(
    ctx: AppContext, topic: Topic
) -> None:
    support = await open_support(ctx, topic)
    cid = support.conversation_id
    tasks = [
        asyncio.create_task(ctx.messages.post(support.owner, cid, f"m{n}", client_id=f"m{n}"))
        for n in range(10)
    ]
    await asyncio.sleep(0)
    tasks[4].cancel()
    results = await gather(*tasks)

    assert isinstance(results[4], asyncio.CancelledError)
    assert all(isinstance(r, PostResult) for n, r in enumerate(results) if n != 4)
    bodies = sorted(m.body for m in await rows(ctx, cid))
    assert {f"m{n}" for n in range(10) if n != 4} <= set(bodies) <= {f"m{n}" for n in range(10)}
    # If it was stored anyway, resending it acks the stored copy rather than a second one.
    resend = await ctx.messages.post(support.owner, cid, "m4", client_id="m4")
    assert [m.id for m in await rows(ctx, cid) if m.body == "m4"] == [resend.message_id]
    await check_log(ctx, cid)


@dataclass
class Room:
    id: int
    instructor: User
    members: list[User]


async def open_room(ctx: AppContext, members: int) -> Room:
    """A session room with ``members`` participants, known to the writer as a room (the first
    message into a room takes a detour through the support writer to find out its kind)."""
    instructor = await make_user(ctx, Role.moderator)
    room = await ctx.sessions.create(instructor, "Room")
    people = [await make_user(ctx) for _ in range(members)]
    for person in people:
        await ctx.sessions.join(person, room.id)
    await ctx.messages.post(instructor, room.id, "welcome")
    return Room(room.id, instructor, people)


class Watched(Generic[ItemT]):
    """Watches a service's batches: the items of each batch, and the items its one-at-a-time
    path (named ``alone``) took instead, left to it by a batch or retried after one failed."""

    def __init__(self, group: GroupCommit[ItemT, Any], service: object, alone: str) -> None:
        self.batches: list[list[ItemT]] = []
        self.alone: list[ItemT] = []
        commit, one = group.commit, getattr(service, alone)

        async def commit_and_record(items: Sequence[ItemT]) -> Sequence[Any]:
            self.batches.append(list(items))
            return await commit(items)

        async def alone_and_record(item: ItemT) -> Any:
            self.alone.append(item)
            return await one(item)

        group.commit = commit_and_record
        setattr(service, alone, alone_and_record)

    @property
    def sizes(self) -> list[int]:
        return [len(items) for items in self.batches]


def room_batches(ctx: AppContext) -> Watched[Draft]:
    """Watches the session rooms' writer and the messages posted alone."""
    return Watched(ctx.messages.writer.room_group, ctx.messages, "_post_alone")


async def test_public_room_messages_share_batches_with_acks_that_match_the_rows(
    ctx: AppContext, published: Published
) -> None:
    room = await open_room(ctx, 4)
    before = (await conversation(ctx, room.id)).last_seq
    batches = room_batches(ctx)
    senders = [room.instructor, *room.members]
    # Three each: under the participants' rate limit (5 per 10 s).
    acks: list[PostResult] = await gather(
        *(
            ctx.messages.post(senders[n % 5], room.id, f'm{n} "é" 🙂', client_id=f"c{n}")
            for n in range(15)
        )
    )

    assert all(isinstance(ack, PostResult) and not ack.duplicate for ack in acks)
    assert sum(batches.sizes) == 15 and max(batches.sizes) > 1 and batches.alone == []
    stored = {m.id: m for m in await rows(ctx, room.id)}
    for n, ack in enumerate(acks):
        assert stored[ack.message_id].seq == ack.seq
        assert stored[ack.message_id].sender_id == senders[n % 5].id
        assert stored[ack.message_id].body == f'm{n} "é" 🙂'
    seqs = sorted(ack.seq for ack in acks)
    assert seqs == list(range(before + 1, before + 16))
    logged = await check_log(ctx, room.id)
    sent = [e for e in published.of(room.id) if e.seq in set(seqs)]
    assert [e.seq for e in sent] == seqs
    assert [e.frame for e in sent] == [envelope_of(e).frame for e in logged if e.seq in set(seqs)]
    assert all(e.audience is None for e in logged if e.seq in set(seqs))
    assert published.committed and all(published.committed)


async def test_a_room_batch_counts_the_rate_limit_in_order_and_only_for_sends_it_accepts(
    ctx: AppContext,
) -> None:
    room = await open_room(ctx, 1)
    member, instructor = room.members[0], room.instructor
    outsider = await make_user(ctx)
    batches = room_batches(ctx)
    sends = [ctx.messages.post(outsider, room.id, f"x{n}") for n in range(3)]
    sends += [ctx.messages.post(member, room.id, f"m{n}", client_id=f"m{n}") for n in range(6)]
    # A resend of the refused sixth, in the same batch: refused too, nothing stored twice.
    sends.append(ctx.messages.post(member, room.id, "m5", client_id="m5"))
    sends += [ctx.messages.post(instructor, room.id, f"i{n}") for n in range(7)]
    outcomes = await gather(*sends)

    assert all(isinstance(o, Forbidden) and o.code == "not_a_participant" for o in outcomes[:3])
    assert all(isinstance(o, PostResult) for o in outcomes[3:8])
    assert isinstance(outcomes[8], RateLimited) and outcomes[8].retry_after is not None
    assert isinstance(outcomes[9], RateLimited)
    assert all(isinstance(o, PostResult) for o in outcomes[10:])  # instructors are exempt
    assert batches.alone == []
    bodies = [m.body for m in await rows(ctx, room.id)]
    assert sorted(b for b in bodies if b.startswith("m")) == [f"m{n}" for n in range(5)]
    assert not any(b.startswith("x") for b in bodies)
    # The outsider's refused sends counted nothing: once in the room, five go through.
    await ctx.sessions.join(outsider, room.id)
    for n in range(5):
        await ctx.messages.post(outsider, room.id, f"y{n}")
    with pytest.raises(RateLimited):
        await ctx.messages.post(outsider, room.id, "y5")
    await check_log(ctx, room.id)


async def test_a_room_batch_that_fails_as_a_whole_counts_each_message_once(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its messages were counted against the rate limit before the failure; retried one by
    one, they must not be counted again (five sends would then refuse themselves)."""
    room = await open_room(ctx, 1)
    member = room.members[0]
    batches = room_batches(ctx)
    write = message_writer.write_checked
    failures = iter([RuntimeError("commit lost")])

    def fail_once(statements: Statements, checked: Any) -> Any:
        error = next(failures, None)
        if error is not None:
            raise error
        return write(statements, checked)

    monkeypatch.setattr(message_writer, "write_checked", fail_once)
    acks = await gather(
        *(ctx.messages.post(member, room.id, f"m{n}", client_id=f"m{n}") for n in range(5))
    )

    assert all(isinstance(ack, PostResult) for ack in acks), acks
    # One batch of five, which failed; then each alone (the group's own fallback, unwatched).
    assert batches.sizes == [5] and next(failures, None) is None
    assert sorted(m.body for m in await rows(ctx, room.id) if m.sender_id == member.id) == [
        f"m{n}" for n in range(5)
    ]
    with pytest.raises(RateLimited):  # five counted, not ten, and not fewer
        await ctx.messages.post(member, room.id, "m5")
    await check_log(ctx, room.id)


async def test_a_room_batch_leaves_the_rarer_cases_to_the_one_message_path(
    ctx: AppContext,
) -> None:
    room = await open_room(ctx, 4)
    alice, bob, carol, dan = room.members
    instructor = room.instructor
    private = await ctx.messages.post(alice, room.id, "psst", recipient_id=instructor.id)
    await ctx.moderation.mute(instructor, room.id, bob.id, duration_minutes=10, reason="Spamming")
    batches = room_batches(ctx)
    outcomes = await gather(
        ctx.messages.post(alice, room.id, "plain"),
        ctx.messages.post(alice, room.id, "to you", recipient_id=instructor.id),
        ctx.messages.post(bob, room.id, "let me talk"),
        ctx.messages.post(carol, room.id, "what the shit"),
        ctx.messages.post(instructor, room.id, "answer", reply_to=private.message_id),
    )

    plain, whisper, muted, profane, answer = outcomes
    assert isinstance(plain, PostResult)
    assert isinstance(whisper, PostResult)
    assert isinstance(muted, Muted) and "Spamming" in str(muted)
    assert isinstance(profane, PostResult)
    assert isinstance(answer, PostResult)
    assert sorted(d.body for d in batches.alone) == sorted(
        ["let me talk", "what the shit", "answer"]
    )
    stored = {m.id: m for m in await rows(ctx, room.id)}
    assert stored[profane.message_id].body != "what the shit"  # censored
    logged = {e.seq: e for e in await events(ctx, room.id)}
    assert logged[whisper.seq].type == "private_message"
    assert set(logged[whisper.seq].audience or ()) == {alice.id, instructor.id}
    assert logged[answer.seq].payload["reply_to"] == private.message_id
    async with ctx.db.read() as session:
        strikes = await session.scalar(
            select(func.count()).where(
                ProfanityStrike.conversation_id == room.id, ProfanityStrike.user_id == carol.id
            )
        )
    assert strikes == 1

    # Slow mode: the room's messages are timed against the sender's last one, there.
    await ctx.sessions.set_slow_mode(instructor, room.id, 60)
    slow = await gather(
        ctx.messages.post(dan, room.id, "one"), ctx.messages.post(dan, room.id, "two")
    )
    # Side by side, one of the two is first (either, on PostgreSQL), and the other must wait.
    assert sum(isinstance(o, PostResult) for o in slow) == 1
    assert [o.code for o in slow if isinstance(o, RateLimited)] == ["slow_mode"]


async def test_private_messages_in_a_room_batch_reach_only_their_audience(
    ctx: AppContext, published: Published
) -> None:
    room = await open_room(ctx, 3)
    alice, bob, carol = room.members
    instructor = room.instructor
    helper = await make_user(ctx, Role.moderator)
    await ctx.sessions.join(helper, room.id)
    async with ctx.db.write() as session:  # a co-instructor (no endpoint names one yet)
        await session.execute(
            update(Participant)
            .where(Participant.conversation_id == room.id, Participant.user_id == helper.id)
            .values(role="instructor")
        )
    outsider = await make_user(ctx)
    batches = room_batches(ctx)

    outcomes = await gather(
        ctx.messages.post(alice, room.id, "question", recipient_id=instructor.id),
        ctx.messages.post(instructor, room.id, "answer", recipient_id=bob.id),
        ctx.messages.post(alice, room.id, "note to self", recipient_id=alice.id),
        ctx.messages.post(alice, room.id, "psst", recipient_id=carol.id),
        ctx.messages.post(alice, room.id, "hello?", recipient_id=outsider.id),
        ctx.messages.post(carol, room.id, "everyone", client_id="pub"),
    )

    asked, answered, to_self, to_peer, to_outsider, public = outcomes
    assert isinstance(asked, PostResult) and isinstance(answered, PostResult)
    assert isinstance(public, PostResult)
    assert [e.code for e in (to_self, to_peer, to_outsider) if isinstance(e, Invalid)] == [
        "invalid_recipient"
    ] * 3
    assert "someone else" in str(to_self) and "only to an instructor" in str(to_peer)
    assert "not in this session" in str(to_outsider)
    assert batches.alone == [] and max(batches.sizes) > 1
    instructors = {instructor.id, helper.id}
    logged = {e.seq: e for e in await events(ctx, room.id)}
    stored = {m.id: m for m in await rows(ctx, room.id)}
    for ack, people in ((asked, {alice.id}), (answered, {bob.id})):
        event = logged[ack.seq]
        assert event.type == "private_message"
        assert set(event.audience or ()) == people | instructors
        assert stored[ack.message_id].recipient_id == event.payload["recipient_id"]
        # Published with the audience the hub filters by, as a replay would rebuild it.
        [sent] = [e for e in published.of(room.id) if e.seq == ack.seq]
        assert sent.audience == frozenset(people | instructors)
        assert sent.frame == envelope_of(event).frame
    assert logged[public.seq].audience is None
    assert [e.audience for e in published.of(room.id) if e.seq == public.seq] == [None]


async def test_a_room_that_has_ended_refuses_in_a_batch(ctx: AppContext) -> None:
    room = await open_room(ctx, 1)
    async with ctx.db.write() as session:
        await session.execute(
            update(Conversation).where(Conversation.id == room.id).values(status="done")
        )
    outcomes = await gather(*(ctx.messages.post(room.members[0], room.id, "hi") for _ in range(2)))
    assert all(isinstance(o, Conflict) and o.code == "conversation_closed" for o in outcomes)


async def test_close_acks_messages_still_queued(settings: Settings) -> None:
    context = build_context(settings)
    topic = await make_topic(context, await make_user(context, Role.admin))
    support = await open_support(context, topic)
    tasks = [
        asyncio.create_task(context.messages.post(support.owner, support.conversation_id, f"m{n}"))
        for n in range(5)
    ]
    await asyncio.sleep(0)  # queued for the writer, not yet written
    await asyncio.wait_for(context.close(), TIMEOUT)

    results = await gather(*tasks)
    assert all(isinstance(result, PostResult) for result in results)
    assert sorted(result.seq for result in results) == list(
        range(results[0].seq, results[0].seq + 5)
    )


async def test_a_message_sent_while_the_server_stops_is_refused_with_try_again(
    ctx: AppContext, topic: Topic
) -> None:
    support = await open_support(ctx, topic)
    before = [m.body for m in await rows(ctx, support.conversation_id)]
    await ctx.messages.writer.close()
    with pytest.raises(TryAgain) as refused:
        await ctx.messages.post(support.owner, support.conversation_id, "late", client_id="late")
    assert refused.value.status == 503 and refused.value.code == "try_again"
    assert [m.body for m in await rows(ctx, support.conversation_id)] == before


async def test_room_facts_read_more_people_than_one_in_list_takes(ctx: AppContext) -> None:
    room = await open_room(ctx, 1)
    [member] = room.members
    conversations = await ctx.db.transact(lambda st: load_conversations(st, [room.id]))
    # Senders and recipients past MAX_IN distinct people (ids that need not exist).
    others = [User(id=10_000 + n, display_name=f"p{n}", role=Role.user) for n in range(MAX_IN)]
    drafts = [Draft(person, room.id, "hi", recipient_id=person.id + MAX_IN) for person in others]
    drafts += [Draft(member, room.id, "me too"), Draft(room.instructor, room.id, "and me")]

    facts = await ctx.db.transact(lambda st: _room_facts(st, drafts, conversations))

    assert facts.roles == {
        (room.id, member.id): "member",
        (room.id, room.instructor.id): "instructor",
    }
    assert facts.instructors == {room.id: {room.instructor.id}}
