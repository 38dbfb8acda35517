"""Bot chats end when their user goes quiet: they become *done*, their messages are indexed for
search only then, annotators find and annotate them, and the user's next message opens a new
chat. The search index stays right through erasures and corrections on either side of the end."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from chatforge.context import AppContext
from chatforge.datasets.formats import ExportFormat
from chatforge.services import bot_chats
from chatforge.services.selection import ConversationSelection
from chatforge.store.models import (
    Conversation,
    ConversationKind,
    ConversationStatus,
    Event,
    Message,
    Rating,
    Role,
)
from chatforge.store.types import utcnow
from tests.channels.test_webhook_batches import whatsapp
from tests.factories import make_user


def later(ctx: AppContext, minutes: float = 1) -> Any:
    """A moment ``minutes`` after every chat so far has been quiet for the idle limit."""
    return utcnow() + timedelta(minutes=ctx.settings.bot_chat_idle_minutes + minutes)


async def chats(ctx: AppContext) -> list[Conversation]:
    async with ctx.db.read() as session:
        found = await session.scalars(
            select(Conversation)
            .where(Conversation.kind == ConversationKind.bot)
            .order_by(Conversation.id)
        )
        return list(found)


def indexed(ctx: AppContext, word: str) -> list[int]:
    """The message ids the SQLite search index gives for ``word``."""
    with sqlite3.connect(ctx.settings.resolved_database_url.split("///", 1)[1]) as db:
        rows = db.execute(
            "SELECT rowid FROM message_search WHERE message_search MATCH ? ORDER BY rowid",
            (word,),
        )
        found = [row[0] for row in rows]
        db.execute("INSERT INTO message_search(message_search) VALUES ('integrity-check')")
    return found


async def message_ids(ctx: AppContext, conversation_id: int, word: str = "") -> list[int]:
    """The ids of the conversation's messages, or of those that say ``word``."""
    async with ctx.db.read() as session:
        found = await session.execute(
            select(Message.id, Message.body).where(Message.conversation_id == conversation_id)
        )
        return sorted(
            id for id, body in found if not word or word in re.findall(r"\w+", body.lower())
        )


async def test_a_quiet_chat_ends_and_only_then_is_searched(ctx: AppContext) -> None:
    await ctx.channels.receive(whatsapp("python easy", "+27820000101"))
    [chat] = await chats(ctx)
    assert chat.status is ConversationStatus.active
    assert indexed(ctx, "python") == []  # nobody searches an open chat

    # Not yet quiet for long enough.
    assert await ctx.bot_chats.end_idle(later(ctx, minutes=-5)) == []
    assert await ctx.bot_chats.end_idle(later(ctx)) == [chat.id]

    [ended] = await chats(ctx)
    assert ended.status is ConversationStatus.done
    async with ctx.db.read() as session:
        events = list(
            await session.scalars(
                select(Event).where(Event.conversation_id == chat.id).order_by(Event.seq)
            )
        )
    # Ended when its last message was written, not when the sweep came by.
    assert ended.ended_at == events[-2].created_at
    assert (events[-1].type, events[-1].payload) == (
        "conversation_updated",
        {"status": "done", "reason": "idle"},
    )
    assert ended.last_seq == events[-1].seq
    words = await message_ids(ctx, chat.id)
    assert indexed(ctx, "python") == await message_ids(ctx, chat.id, "python") != []

    annotator = await make_user(ctx, Role.annotator)
    page = await ctx.annotation.browse(annotator, ConversationSelection(q="python"))
    assert [item.conversation.id for item in page.items] == [chat.id]

    # Annotated and exported for training like any finished chat: the user asks, the bot
    # answers as the assistant.
    await ctx.annotation.annotate(annotator, chat.id, Rating.excellent)
    export = await ctx.datasets.export(
        annotator, ExportFormat.openai_jsonl, ConversationSelection(kind=ConversationKind.bot)
    )
    [line] = "".join([chunk async for chunk in export.chunks()]).splitlines()
    turns = json.loads(line)["messages"]
    assert [turn["role"] for turn in turns] == ["user", "assistant"]
    assert turns[0]["content"] == "python easy"

    # An ended chat is never written to again: the next message opens a new one.
    assert await ctx.bot_chats.end_idle(later(ctx)) == []
    await ctx.channels.receive(whatsapp("sql hard", "+27820000101"))
    old, new = await chats(ctx)
    assert (old.id, new.status) == (chat.id, ConversationStatus.active)
    assert await message_ids(ctx, chat.id) == words
    assert indexed(ctx, "sql") == await message_ids(ctx, chat.id, "sql")  # not the new chat's


async def test_a_chat_that_moves_on_while_it_is_ended_stays_open(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    await ctx.channels.receive(whatsapp("help", "+27820000102"))
    end = ctx.bot_chats._end

    async def speak_first(quiet: Any) -> list[int]:
        # The user writes between the sweep's reading and its writing.
        await ctx.channels.receive(whatsapp("python easy", "+27820000102"))
        return await end(quiet)

    monkeypatch.setattr(ctx.bot_chats, "_end", speak_first)
    assert await ctx.bot_chats.end_idle(later(ctx)) == []
    [chat] = await chats(ctx)
    assert chat.status is ConversationStatus.active
    assert await message_ids(ctx, chat.id, "python") != []  # what was said went on in it


async def test_a_backlog_ends_in_several_transactions(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bot_chats, "BATCH", 2)
    bot_chats._QUIET_CHATS = bot_chats._QUIET_CHATS.limit(2)
    try:
        for n in range(5):
            await ctx.channels.receive(whatsapp("help", f"+2782000020{n}"))
        assert len(await ctx.bot_chats.end_idle(later(ctx))) == 5
    finally:
        bot_chats._QUIET_CHATS = bot_chats._QUIET_CHATS.limit(bot_chats.BATCH)
    assert {chat.status for chat in await chats(ctx)} == {ConversationStatus.done}


async def test_the_index_stays_right_through_erasure_and_corrections(ctx: AppContext) -> None:
    admin = await make_user(ctx, Role.admin)
    annotator = await make_user(ctx, Role.annotator)
    for number in ("+27820000301", "+27820000302"):
        await ctx.channels.receive(whatsapp("zanzibar python easy", number))
    first, second = await chats(ctx)

    # Erased while the chat is open: what the index never held, it does not take out.
    await ctx.privacy.erase_user(admin, first.owner_id)
    assert await ctx.bot_chats.end_idle(later(ctx)) == [first.id, second.id]
    assert indexed(ctx, "zanzibar") == await message_ids(ctx, second.id, "zanzibar") != []
    assert indexed(ctx, "python") == await message_ids(ctx, second.id, "python")
    assert indexed(ctx, "erased") == await message_ids(ctx, first.id)

    # Corrected after the end: the index follows the correction.
    question = (await message_ids(ctx, second.id))[0]
    await ctx.annotation.correct(annotator, question, text="kilimanjaro")
    assert indexed(ctx, "kilimanjaro") == [question]
    await ctx.annotation.correct(annotator, question, text="serengeti")
    assert (indexed(ctx, "kilimanjaro"), indexed(ctx, "serengeti")) == ([], [question])
