"""Joins in batches (``join_batches.py``) through ``SessionService.enter`` and ``join``: joins
sent side by side share a transaction and leave what one join at a time would leave. On SQLite
and PostgreSQL; nothing here is timed."""

# The fixtures imported from test_message_batching (a database per backend) are taken as
# parameters of the same names, which ruff reads as redefinitions.
# ruff: noqa: F811

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from chatforge.context import AppContext
from chatforge.errors import Conflict, NotFound
from chatforge.services import sessions as sessions_module
from chatforge.services.join_batches import Join, Joined
from chatforge.store.models import Conversation, Participant, Role, User
from chatforge.store.write_lane import Statements
from tests.factories import make_topic, make_user
from tests.services.test_message_batching import (  # noqa: F401 (fixtures)
    Published,
    Watched,
    backend,
    ctx,
    events,
    gather,
    published,
)


async def members(ctx: AppContext, room: int) -> dict[int, tuple[str, datetime, datetime | None]]:
    """Everyone who ever joined ``room``: role, joined_at and left_at."""
    async with ctx.db.read() as session:
        rows = await session.scalars(select(Participant).where(Participant.conversation_id == room))
        return {p.user_id: (p.role, p.joined_at, p.left_at) for p in rows}


def retries(ctx: AppContext) -> list[Join]:
    """The joins retried one by one after their batch failed (a batch that got a case wrong
    would hide behind the one-join path)."""
    retried: list[Join] = []
    fallback = ctx.sessions.joins.fallback
    assert fallback is not None

    async def record(join: Join) -> Joined:
        retried.append(join)
        return await fallback(join)

    ctx.sessions.joins.fallback = record
    return retried


async def new_room(ctx: AppContext) -> tuple[int, User]:
    instructor = await make_user(ctx, Role.moderator)
    return (await ctx.sessions.create(instructor, "Room")).id, instructor


async def test_joins_side_by_side_share_batches_and_make_one_event_each(
    ctx: AppContext, published: Published
) -> None:
    room, instructor = await new_room(ctx)
    other, _ = await new_room(ctx)
    people = [await make_user(ctx) for _ in range(8)]
    now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    ctx.sessions.clock = lambda: now
    before = max(e.seq for e in await events(ctx, room))
    watched, retried = Watched(ctx.sessions.joins, ctx.sessions, "_enter_alone"), retries(ctx)

    await gather(
        *(ctx.sessions.enter(p, room) for p in people),
        ctx.sessions.enter(people[2], room),  # again, in the same batch: nothing more
        ctx.sessions.enter(instructor, room),  # the instructor is in already
        ctx.sessions.enter(people[0], other),  # another room, same batch
    )

    assert max(watched.sizes) > 1 and retried == []
    joined = await members(ctx, room)
    assert joined[instructor.id][0] == "instructor"
    assert [joined[p.id] for p in people] == [("member", now, None)] * len(people)
    logged = [e for e in await events(ctx, room) if e.seq > before]
    assert [e.type for e in logged] == ["user_joined"] * 8
    assert [e.payload for e in logged] == [
        {"user_id": p.id, "name": p.display_name, "role": "member"} for p in people
    ]
    assert [e.actor_id for e in logged] == [p.id for p in people]
    sent = [e.seq for e in published.of(room) if e.seq and e.seq > before]
    assert sent == [e.seq for e in logged]
    assert (await members(ctx, other))[people[0].id][0] == "member"


async def test_who_left_comes_back_with_their_role(ctx: AppContext) -> None:
    room, instructor = await new_room(ctx)
    alice = await make_user(ctx)
    await ctx.sessions.enter(alice, room)
    await ctx.sessions.leave(alice, room)
    await ctx.sessions.leave(instructor, room)
    later = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    ctx.sessions.clock = lambda: later
    watched, retried = Watched(ctx.sessions.joins, ctx.sessions, "_enter_alone"), retries(ctx)

    await gather(ctx.sessions.enter(alice, room), ctx.sessions.enter(instructor, room))

    assert watched.sizes == [2] and retried == []
    joined = await members(ctx, room)
    assert joined[alice.id] == ("member", later, None)
    assert joined[instructor.id] == ("instructor", later, None)
    logged = [e for e in await events(ctx, room) if e.type == "user_joined"]
    assert [e.payload["role"] for e in logged[-2:]] == ["member", "instructor"]


async def test_a_join_batch_refuses_what_the_one_join_path_refuses(ctx: AppContext) -> None:
    room, _ = await new_room(ctx)
    ended, _ = await new_room(ctx)
    admin = await make_user(ctx, Role.admin)
    person = await make_user(ctx)
    topic = await make_topic(ctx, admin)
    support = (await ctx.support.open(person, topic.id)).conversation
    async with ctx.db.write() as session:
        await session.execute(
            update(Conversation).where(Conversation.id == ended).values(status="done")
        )
    in_support = await members(ctx, support.id)
    watched, retried = Watched(ctx.sessions.joins, ctx.sessions, "_enter_alone"), retries(ctx)

    outcomes = await gather(
        ctx.sessions.enter(person, ended),
        ctx.sessions.enter(person, support.id),
        ctx.sessions.enter(person, 10**9),
        ctx.sessions.enter(person, room),
    )
    closed, not_a_room, missing, fine = outcomes

    assert isinstance(closed, Conflict) and closed.code == "conversation_closed"
    assert isinstance(not_a_room, NotFound) and not_a_room.code == "session_not_found"
    assert isinstance(missing, NotFound) and missing.code == "session_not_found"
    assert fine is None and retried == [] and watched.sizes == [4]
    assert person.id not in await members(ctx, ended)
    assert await members(ctx, support.id) == in_support
    assert person.id in await members(ctx, room)


async def test_the_one_join_path_gives_the_same_rooms(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that fails as a whole is retried join by join through the ORM path: the
    members, roles and events are the ones a batch would have written."""
    room, instructor = await new_room(ctx)
    people = [await make_user(ctx) for _ in range(4)]
    await ctx.sessions.enter(people[0], room)
    await ctx.sessions.leave(people[0], room)
    before = max(e.seq for e in await events(ctx, room))
    failures = iter([RuntimeError("commit lost")])
    join_rooms = sessions_module.join_rooms

    def fail_once(statements: Statements, joins: Any, now: datetime) -> Any:
        outcomes = join_rooms(statements, joins, now)
        error = next(failures, None)
        if error is not None:
            raise error
        return outcomes

    monkeypatch.setattr(sessions_module, "join_rooms", fail_once)
    retried = retries(ctx)
    views = await gather(*(ctx.sessions.join(p, room) for p in people))

    assert next(failures, None) is None, "the batch failed once"
    assert sorted(j.actor_id for j in retried) == sorted(p.id for p in people)
    assert all(view.id == room for view in views)
    joined = await members(ctx, room)
    assert {p.id: joined[p.id][0] for p in people} == {p.id: "member" for p in people}
    assert all(joined[p.id][2] is None for p in people)
    logged = [e for e in await events(ctx, room) if e.seq > before]
    assert sorted(e.payload["user_id"] for e in logged) == sorted(p.id for p in people)
    assert {e.type for e in logged} == {"user_joined"}
    assert joined[instructor.id][0] == "instructor"


async def test_join_returns_the_conversation_after_the_join(ctx: AppContext) -> None:
    room, _ = await new_room(ctx)
    person = await make_user(ctx)
    view = await ctx.sessions.join(person, room)
    assert view.id == room and view.last_seq == max(e.seq for e in await events(ctx, room))
    assert view.last_seq >= 2  # created, then this join
    assert (await members(ctx, room))[person.id][0] == "member"
    ctx.sessions.clock = lambda: datetime(2026, 11, 25, tzinfo=UTC) + timedelta(hours=1)
    again = await ctx.sessions.join(person, room)
    assert again.last_seq == view.last_seq, "joining again writes nothing"
