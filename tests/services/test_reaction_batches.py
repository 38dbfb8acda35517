"""Reactions in batches (``reaction_batches.py``) through ``ReactionService``: toggles sent
side by side share a transaction, and the outcome is what one toggle at a time would give.

Each test checks what is stored, the events (gapless, one per change, with the count after
it) and each caller's result, never timing; the cases a batch leaves to the one-message path
are checked to take it. On SQLite and PostgreSQL.
"""

# The fixtures imported from test_message_batching (a database per backend) are taken as
# parameters of the same names, which ruff reads as redefinitions.
# ruff: noqa: F811

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, update

from chatforge.context import AppContext
from chatforge.errors import Conflict, Forbidden, NotFound, RateLimited
from chatforge.services import reactions as reactions_module
from chatforge.services.reactions import ReactionResult
from chatforge.store.models import Conversation, Role
from chatforge.store.session_models import Reaction
from tests.factories import make_user
from tests.services.test_message_batching import (  # noqa: F401 (fixtures)
    Published,
    Room,
    Watched,
    backend,
    ctx,
    events,
    gather,
    open_room,
    published,
)

CLAP = "👏"


async def reactions(ctx: AppContext, message_id: int) -> set[tuple[int, str]]:
    async with ctx.db.read() as session:
        rows = await session.execute(
            select(Reaction.user_id, Reaction.emoji).where(Reaction.message_id == message_id)
        )
        return {(user_id, emoji) for user_id, emoji in rows}


async def reaction_events(ctx: AppContext, room: Room, after: int) -> list[tuple[str, int, int]]:
    """(type, user_id, count) of the room's reaction events after ``after``, checking the log
    has no hole."""
    logged = [e for e in await events(ctx, room.id) if e.seq > after]
    assert [e.seq for e in logged] == list(range(after + 1, after + 1 + len(logged)))
    return [(e.type, e.payload["user_id"], e.payload["count"]) for e in logged]


async def last_seq(ctx: AppContext, room: Room) -> int:
    return max(e.seq for e in await events(ctx, room.id))


async def test_toggles_side_by_side_share_batches_and_count_in_order(
    ctx: AppContext, published: Published
) -> None:
    room = await open_room(ctx, 8)
    message = await ctx.messages.post(room.instructor, room.id, "clap if you agree")
    before = await last_seq(ctx, room)
    watched = Watched(ctx.reactions.batches, ctx.reactions, "_set_alone")
    people = [room.instructor, *room.members]

    added: list[ReactionResult] = await gather(
        *(ctx.reactions.toggle(p, room.id, message.message_id, CLAP) for p in people)
    )

    assert all(r.added and r.changed and r.emoji == CLAP for r in added)
    assert max(len(b) for b in watched.batches) > 1 and watched.alone == []
    # As one at a time: the counts go 1..9 in the order of the seqs.
    assert sorted((r.seq, r.count) for r in added if r.seq) == [
        (before + n, n) for n in range(1, 10)
    ]
    assert await reactions(ctx, message.message_id) == {(p.id, CLAP) for p in people}
    logged = await reaction_events(ctx, room, before)
    assert [(t, c) for t, _, c in logged] == [("reaction_added", n) for n in range(1, 10)]
    assert sorted(user for _, user, _ in logged) == sorted(p.id for p in people)
    sent = [e for e in published.of(room.id) if e.seq and e.seq > before]
    assert [e.seq for e in sent] == list(range(before + 1, before + 10))

    removed = await gather(
        *(ctx.reactions.toggle(p, room.id, message.message_id, CLAP) for p in people)
    )
    assert all(not r.added and r.changed for r in removed)
    assert sorted(r.count for r in removed) == list(range(9))
    assert await reactions(ctx, message.message_id) == set()


async def test_one_persons_toggles_in_one_batch_apply_in_order(ctx: AppContext) -> None:
    room = await open_room(ctx, 1)
    member = room.members[0]
    message = await ctx.messages.post(room.instructor, room.id, "hello")
    await ctx.reactions.add(member, room.id, message.message_id, "🔥")
    before = await last_seq(ctx, room)
    mid = message.message_id

    outcomes: list[ReactionResult] = await gather(
        ctx.reactions.toggle(member, room.id, mid, CLAP),  # on
        ctx.reactions.toggle(member, room.id, mid, "🔥"),  # off
        ctx.reactions.add(member, room.id, mid, "❤️"),  # on
        ctx.reactions.toggle(member, room.id, mid, CLAP),  # off again
        ctx.reactions.toggle(member, room.id, mid, "🔥"),  # on again: its row deleted, inserted
        ctx.reactions.add(member, room.id, mid, "❤️"),  # on already: no change
    )

    assert [(r.added, r.changed, r.count) for r in outcomes] == [
        (True, True, 1),
        (False, True, 0),
        (True, True, 1),
        (False, True, 0),
        (True, True, 1),
        (True, False, 1),
    ]
    assert outcomes[5].seq is None
    assert await reactions(ctx, mid) == {(member.id, "🔥"), (member.id, "❤️")}
    logged = await reaction_events(ctx, room, before)
    assert [(t, c) for t, _, c in logged] == [
        ("reaction_added", 1),
        ("reaction_removed", 0),
        ("reaction_added", 1),
        ("reaction_removed", 0),
        ("reaction_added", 1),
    ]


async def test_the_rate_limit_counts_only_changes_in_the_order_sent(ctx: AppContext) -> None:
    room = await open_room(ctx, 1)
    member, instructor = room.members[0], room.instructor
    messages = [await ctx.messages.post(instructor, room.id, f"m{n}") for n in range(12)]
    await ctx.reactions.add(member, room.id, messages[0].message_id, CLAP)  # one counted

    outcomes = await gather(
        # Already on: no change, nothing counted.
        ctx.reactions.add(member, room.id, messages[0].message_id, CLAP),
        *(ctx.reactions.add(member, room.id, m.message_id, CLAP) for m in messages[1:]),
        *(ctx.reactions.add(instructor, room.id, m.message_id, CLAP) for m in messages),
    )

    assert isinstance(outcomes[0], ReactionResult) and not outcomes[0].changed
    member_outcomes = outcomes[1:12]
    # 10 a minute: nine more change, the last two of the member's are refused.
    assert all(isinstance(o, ReactionResult) and o.changed for o in member_outcomes[:9])
    assert all(isinstance(o, RateLimited) for o in member_outcomes[9:])
    assert all(isinstance(o, ReactionResult) and o.changed for o in outcomes[12:])
    for index, message in enumerate(messages):
        expected = {(instructor.id, CLAP)}
        if index < 10:
            expected.add((member.id, CLAP))
        assert await reactions(ctx, message.message_id) == expected


async def test_a_batch_that_fails_as_a_whole_counts_each_toggle_once(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retried one by one after the batch failed, toggles it already counted are not counted
    again (ten reactions would otherwise refuse themselves)."""
    room = await open_room(ctx, 1)
    member, instructor = room.members[0], room.instructor
    messages = [await ctx.messages.post(instructor, room.id, f"m{n}") for n in range(11)]
    write = reactions_module.write_toggles
    failures = iter([RuntimeError("commit lost")])

    def fail_once(statements: Any, changes: Any, now: Any) -> Any:
        error = next(failures, None)
        if error is not None:
            raise error
        return write(statements, changes, now)

    monkeypatch.setattr(reactions_module, "write_toggles", fail_once)
    outcomes = await gather(
        *(ctx.reactions.add(member, room.id, m.message_id, CLAP) for m in messages[:10])
    )

    assert next(failures, None) is None, "the batch failed once"
    assert all(isinstance(o, ReactionResult) and o.changed for o in outcomes), outcomes
    for message in messages[:10]:
        assert await reactions(ctx, message.message_id) == {(member.id, CLAP)}
    with pytest.raises(RateLimited):  # ten counted (10 a minute), not twenty
        await ctx.reactions.add(member, room.id, messages[10].message_id, CLAP)


async def test_a_batch_refuses_what_it_must_and_leaves_private_messages_alone(
    ctx: AppContext,
) -> None:
    room = await open_room(ctx, 2)
    other = await open_room(ctx, 0)
    alice, bob = room.members
    outsider = await make_user(ctx)
    public = await ctx.messages.post(room.instructor, room.id, "public")
    gone = await ctx.messages.post(room.instructor, room.id, "to delete")
    await ctx.moderation.delete_message(room.instructor, room.id, gone.message_id)
    elsewhere = await ctx.messages.post(other.instructor, other.id, "elsewhere")
    private = await ctx.messages.post(alice, room.id, "psst", recipient_id=room.instructor.id)
    watched = Watched(ctx.reactions.batches, ctx.reactions, "_set_alone")

    outcomes = await gather(
        ctx.reactions.toggle(outsider, room.id, public.message_id, CLAP),
        ctx.reactions.toggle(alice, room.id, gone.message_id, CLAP),
        ctx.reactions.toggle(alice, room.id, elsewhere.message_id, CLAP),
        ctx.reactions.toggle(alice, room.id, 10**9, CLAP),
        ctx.reactions.toggle(bob, room.id, private.message_id, CLAP),  # not in its audience
        ctx.reactions.toggle(room.instructor, room.id, private.message_id, CLAP),
        ctx.reactions.toggle(alice, room.id, public.message_id, CLAP),
    )

    forbidden, deleted, wrong_room, missing, hidden, whispered, fine = outcomes
    assert isinstance(forbidden, Forbidden) and forbidden.code == "not_a_participant"
    assert isinstance(deleted, Conflict) and deleted.code == "message_deleted"
    assert isinstance(wrong_room, NotFound) and wrong_room.code == "message_not_found"
    assert isinstance(missing, NotFound) and missing.code == "message_not_found"
    assert isinstance(hidden, NotFound) and hidden.code == "message_not_found"
    assert isinstance(whispered, ReactionResult) and whispered.changed
    assert isinstance(fine, ReactionResult) and fine.count == 1
    assert sorted(t.actor_id for t in watched.alone) == sorted([bob.id, room.instructor.id])
    logged = {e.seq: e for e in await events(ctx, room.id)}
    assert whispered.seq is not None and fine.seq is not None
    assert set(logged[whispered.seq].audience or ()) == {alice.id, room.instructor.id}
    assert logged[fine.seq].audience is None

    async with ctx.db.write() as session:
        await session.execute(
            update(Conversation).where(Conversation.id == room.id).values(status="done")
        )
    [ended] = await gather(ctx.reactions.toggle(alice, room.id, public.message_id, CLAP))
    assert isinstance(ended, Conflict) and ended.code == "conversation_closed"


async def test_admins_may_react_in_any_room(ctx: AppContext) -> None:
    room = await open_room(ctx, 0)
    admin = await make_user(ctx, Role.admin)
    message = await ctx.messages.post(room.instructor, room.id, "hello")
    result = await ctx.reactions.toggle(admin, room.id, message.message_id, CLAP)
    assert result.changed and await reactions(ctx, message.message_id) == {(admin.id, CLAP)}


async def test_two_toggles_of_one_reaction_on_the_one_message_path_take_turns(
    ctx: AppContext,
) -> None:
    room = await open_room(ctx, 1)
    [alice] = room.members
    private = await ctx.messages.post(alice, room.id, "psst", recipient_id=room.instructor.id)
    watched = Watched(ctx.reactions.batches, ctx.reactions, "_set_alone")

    # A private message's reactions take the one-message path: side by side, the second must
    # see the first's row (on PostgreSQL both found none and the second insert failed).
    outcomes = await gather(
        *(ctx.reactions.toggle(alice, room.id, private.message_id, CLAP) for _ in range(4))
    )

    assert len(watched.alone) == 4
    assert all(isinstance(o, ReactionResult) and o.changed for o in outcomes)
    assert sorted(o.added for o in outcomes) == [False, False, True, True]
    assert await reactions(ctx, private.message_id) == set()
