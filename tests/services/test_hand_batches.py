"""Raised hands in batches (``hand_batches.py``) through ``HandService.raise_hand``: raises
sent side by side share a transaction, and the queue is what one raise at a time would give.
On SQLite and PostgreSQL; nothing here is timed."""

# The fixtures imported from test_message_batching (a database per backend) are taken as
# parameters of the same names, which ruff reads as redefinitions.
# ruff: noqa: F811

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from chatforge.context import AppContext
from chatforge.errors import Conflict, Forbidden, NotFound
from chatforge.services.hand_batches import HandView
from chatforge.store.models import Conversation, Role
from tests.factories import make_topic, make_user
from tests.services.test_message_batching import (  # noqa: F401 (fixtures)
    Published,
    Watched,
    backend,
    ctx,
    events,
    gather,
    open_room,
    published,
)


async def test_hands_raised_side_by_side_queue_in_the_order_sent(
    ctx: AppContext, published: Published
) -> None:
    room = await open_room(ctx, 8)
    # One reading of the clock for everyone, as in a batch on a coarse clock.
    ctx.hands.clock = lambda: datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    first = room.members[0]
    await ctx.hands.raise_hand(first, room.id)  # up before the batch, at the same time
    before = max(e.seq for e in await events(ctx, room.id))
    watched = Watched(ctx.hands.batches, ctx.hands, "_raise_alone")

    views: list[HandView] = await gather(
        *(ctx.hands.raise_hand(m, room.id) for m in reversed(room.members)),
        ctx.hands.raise_hand(room.members[3], room.id),  # again, in the same batch
    )

    assert max(len(b) for b in watched.batches) > 1 and watched.alone == []
    order = [first, *reversed(room.members[1:])]
    queue = await ctx.hands.hands(room.instructor, room.id)
    assert [h.user_id for h in queue] == [m.id for m in order]
    times = [h.raised_at for h in queue]
    assert times == sorted(times) and len(set(times)) == len(times)
    # Raising again keeps the place: the earlier hand's time, and no second event.
    by_user = {v.user_id: v for v in views}
    assert views[-1] == by_user[room.members[3].id]
    assert by_user[first.id].raised_at == times[0]
    logged = [e for e in await events(ctx, room.id) if e.seq > before]
    assert [e.type for e in logged] == ["hand_raised"] * 7
    assert [e.payload["user_id"] for e in logged] == [m.id for m in order[1:]]
    assert [e.payload["raised_at"] for e in logged] == [t.isoformat() for t in times[1:]]
    sent = [e.seq for e in published.of(room.id) if e.seq and e.seq > before]
    assert sent == [e.seq for e in logged]


async def test_a_hand_batch_refuses_what_the_one_message_path_refuses(ctx: AppContext) -> None:
    room = await open_room(ctx, 1)
    ended = await open_room(ctx, 1)
    admin = await make_user(ctx, Role.admin)
    outsider = await make_user(ctx)
    topic = await make_topic(ctx, admin)
    support = (await ctx.support.open(outsider, topic.id)).conversation
    async with ctx.db.write() as session:
        await session.execute(
            update(Conversation).where(Conversation.id == ended.id).values(status="done")
        )
    watched = Watched(ctx.hands.batches, ctx.hands, "_raise_alone")

    outcomes = await gather(
        ctx.hands.raise_hand(outsider, room.id),
        ctx.hands.raise_hand(ended.members[0], ended.id),
        ctx.hands.raise_hand(outsider, support.id),
        ctx.hands.raise_hand(outsider, 10**9),
        ctx.hands.raise_hand(admin, room.id),
        ctx.hands.raise_hand(room.members[0], room.id),
    )

    not_joined, closed, not_a_room, missing, by_admin, fine = outcomes
    assert isinstance(not_joined, Forbidden) and not_joined.code == "not_a_participant"
    assert isinstance(closed, Conflict) and closed.code == "conversation_closed"
    assert isinstance(not_a_room, NotFound) and not_a_room.code == "session_not_found"
    assert isinstance(missing, NotFound) and missing.code == "conversation_not_found"
    assert isinstance(by_admin, HandView) and isinstance(fine, HandView)
    # What is not a session room was answered by the one-message path.
    assert sorted(r.conversation_id for r in watched.alone) == sorted([support.id, 10**9])
    queue = await ctx.hands.hands(room.instructor, room.id)
    assert [h.user_id for h in queue] == [admin.id, room.members[0].id]


async def test_a_hand_after_a_lowered_one_goes_to_the_back(ctx: AppContext) -> None:
    room = await open_room(ctx, 3)
    alice, bob, carol = room.members
    now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    ctx.hands.clock = lambda: now
    await gather(*(ctx.hands.raise_hand(p, room.id) for p in (alice, bob)))
    await ctx.hands.lower_hand(alice, room.id)
    now += timedelta(seconds=5)  # the clock moves on: the next hands take its time
    await gather(*(ctx.hands.raise_hand(p, room.id) for p in (carol, alice)))

    queue = await ctx.hands.hands(room.instructor, room.id)
    assert [h.user_id for h in queue] == [bob.id, carol.id, alice.id]
    assert queue[1].raised_at == now
