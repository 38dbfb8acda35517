"""On SQLite the search index holds finished conversations only: a support chat's messages are
indexed when it ends, in the same transaction, and a live session's room never is. Annotators,
who search, only see finished conversations, so they find the same as before."""

from __future__ import annotations

from chatforge.context import AppContext
from chatforge.services.selection import ConversationSelection
from chatforge.store.models import Role
from tests.factories import make_topic, make_user
from tests.services.test_bot_chats import indexed, message_ids


async def test_a_support_chat_is_indexed_when_it_ends(ctx: AppContext) -> None:
    admin = await make_user(ctx, Role.admin)
    moderator = await make_user(ctx, Role.moderator)
    annotator = await make_user(ctx, Role.annotator)
    user = await make_user(ctx)
    topic = await make_topic(ctx, admin)
    conversation_id = (await ctx.support.open(user, topic.id)).conversation.id
    await ctx.messages.post(user, conversation_id, "my kubernetes pod restarts")
    await ctx.support.claim(moderator, conversation_id)
    await ctx.messages.post(moderator, conversation_id, "check the kubernetes liveness probe")

    assert indexed(ctx, "kubernetes") == []

    await ctx.support.end(user, conversation_id)
    said = await message_ids(ctx, conversation_id, "kubernetes")
    assert len(said) == 2
    assert indexed(ctx, "kubernetes") == said
    # The triggers keep the index in step from now on.
    page = await ctx.annotation.browse(annotator, ConversationSelection(q="liveness"))
    assert [item.conversation.id for item in page.items] == [conversation_id]
    await ctx.annotation.correct(annotator, said[1], text="check the readiness probe")
    assert indexed(ctx, "readiness") == [said[1]]


async def test_a_session_room_stays_out_of_the_index(ctx: AppContext) -> None:
    instructor = await make_user(ctx, Role.moderator)
    student = await make_user(ctx)
    room = await ctx.sessions.create(instructor, "Distributed systems")
    await ctx.sessions.join(student, room.id)
    await ctx.messages.post(student, room.id, "what is raft consensus")
    answer = await ctx.messages.post(instructor, room.id, "raft elects a leader")
    await ctx.moderation.delete_message(instructor, room.id, answer.message_id)

    assert len(await message_ids(ctx, room.id, "raft")) == 2
    assert indexed(ctx, "raft") == []
