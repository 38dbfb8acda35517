"""The runtime against a real database: persistence across restarts, errors, idle timeouts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from chatforge.bots.runtime import BotRequest
from chatforge.channels.identity import user_for_identity
from chatforge.context import AppContext, build_context
from chatforge.settings import Settings, SettingsError, load_settings
from chatforge.store import migrate
from chatforge.store.bot_models import BotInteraction, BotState
from chatforge.store.models import ChannelIdentity, Conversation, ConversationKind, Message, User
from tests.clock import ManualClock
from tests.servers import SECRET

MODULE = "tests.bots.sample_bots"


@pytest.fixture
def config(tmp_path: Path) -> Settings:
    settings = load_settings(
        data_dir=tmp_path / "data",
        secret_key=SECRET,
        bot_modules=MODULE,
        channel_bots="console=quiz",
    )
    settings.check()
    migrate.upgrade(settings.resolved_database_url)
    return settings


class Outbox:
    def __init__(self) -> None:
        self.sent: list[tuple[int, str, str]] = []

    async def send(self, user_id: int, channel: str, text: str) -> None:
        self.sent.append((user_id, channel, text))


async def start(config: Settings, clock: ManualClock) -> AppContext:
    ctx = build_context(config)
    ctx.bot_runtime.clock = clock
    return ctx


@pytest.fixture
async def clock() -> AsyncIterator[ManualClock]:
    yield ManualClock()


async def console_user(ctx: AppContext, name: str = "ada") -> User:
    async with ctx.db.write() as session:
        return await user_for_identity(session, "console", name)


async def say(ctx: AppContext, user: User, text: str, bot: str = "quiz") -> list[str]:
    reply = await ctx.bot_runtime.converse(ctx.bot_runtime.registry.get(bot), user, "console", text)
    return reply.replies


async def test_state_and_stored_values_survive_a_restart(
    config: Settings, clock: ManualClock
) -> None:
    ctx = await start(config, clock)
    user = await console_user(ctx)
    assert await say(ctx, user, "hello") == ["You are in the lobby.", "Send quiz to start."]
    assert await say(ctx, user, "quiz") == ["Quiz time. You have 60 seconds per answer."]
    assert await say(ctx, user, "42") == ["noted 42 (1 so far)"]
    await ctx.close()

    ctx = await start(config, clock)
    assert await say(ctx, user, "43") == ["noted 43 (2 so far)"]
    async with ctx.db.read() as session:
        row = await session.scalar(select(BotState).where(BotState.user_id == user.id))
    assert row is not None
    assert (row.bot, row.state, row.values) == ("quiz", "quiz", {"answers": ["42", "43"]})
    await ctx.close()


async def test_a_handler_error_apologises_logs_and_changes_nothing(
    config: Settings, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = await start(config, clock)
    user = await console_user(ctx)
    await say(ctx, user, "quiz")
    await say(ctx, user, "1")
    replies = await say(ctx, user, "boom")
    assert replies == ["Sorry, something went wrong on our side. Please try again in a moment."]
    assert "the quiz handler broke" in caplog.text
    async with ctx.db.read() as session:
        row = await session.scalar(select(BotState).where(BotState.user_id == user.id))
        logged = list(await session.scalars(select(BotInteraction).order_by(BotInteraction.id)))
    assert row is not None
    assert row.state == "quiz"
    assert row.values == {"answers": ["1"]}
    assert (logged[-1].keyword, logged[-1].outcome, logged[-1].counted) == ("boom", "error", False)
    assert await say(ctx, user, "2") == ["noted 2 (2 so far)"]
    await ctx.close()


async def state_row(ctx: AppContext, user: User) -> BotState:
    async with ctx.db.read() as session:
        row = await session.scalar(select(BotState).where(BotState.user_id == user.id))
    assert row is not None
    return row


async def test_a_step_that_changes_nothing_does_not_rewrite_the_state(
    config: Settings, clock: ManualClock
) -> None:
    ctx = await start(config, clock)
    user = await console_user(ctx)
    await say(ctx, user, "hello")  # enters the lobby
    entered = clock.now
    clock.advance(minutes=5)
    assert await say(ctx, user, "hello again") == ["Send quiz to start."]
    row = await state_row(ctx, user)
    assert (row.state, row.updated_at) == ("lobby", entered)

    # In one batch: a step that moves on, then one that fails and so changes nothing. What the
    # first step decided is written.
    moved = clock.advance(minutes=5)
    quiz = ctx.bot_runtime.registry.get("quiz")
    async with ctx.bot_runtime.transaction() as transaction:
        replies = await ctx.bot_runtime.handle_many(
            transaction,
            [BotRequest(quiz, user, "console", "quiz"), BotRequest(quiz, user, "console", "boom")],
        )
    assert replies[1].replies == [
        "Sorry, something went wrong on our side. Please try again in a moment."
    ]
    row = await state_row(ctx, user)
    assert (row.state, row.values, row.updated_at) == ("quiz", {}, moved)
    assert row.idle_deadline == moved + timedelta(seconds=60)
    await ctx.close()


async def test_bot_chats_are_recorded_as_bot_conversations(
    config: Settings, clock: ManualClock
) -> None:
    ctx = await start(config, clock)
    user = await console_user(ctx)
    await say(ctx, user, "hello")
    await say(ctx, user, "quiz")
    async with ctx.db.read() as session:
        conversation = await session.scalar(select(Conversation))
        bodies = list(
            await session.execute(
                select(Message.sender_id, Message.body, Message.seq).order_by(Message.seq)
            )
        )
    assert conversation is not None
    assert conversation.kind is ConversationKind.bot
    assert conversation.owner_id == user.id
    assert conversation.channel == "console"
    assert [(sender == user.id, body) for sender, body, _ in bodies] == [
        (True, "hello"),
        (False, "You are in the lobby."),
        (False, "Send quiz to start."),
        (True, "quiz"),
        (False, "Quiz time. You have 60 seconds per answer."),
    ]
    assert [seq for *_, seq in bodies] == [1, 2, 3, 4, 5]
    await ctx.close()


async def test_idle_timeouts_fire_after_a_restart_and_reach_the_user(
    config: Settings, clock: ManualClock
) -> None:
    ctx = await start(config, clock)
    user = await console_user(ctx)
    await say(ctx, user, "quiz")
    await say(ctx, user, "7")
    await ctx.close()

    # The server is down while the deadline passes.
    clock.advance(seconds=59)
    ctx = await start(config, clock)
    outbox = Outbox()
    ctx.bot_runtime.outbox = outbox
    assert await ctx.bot_runtime.fire_timeouts() == 0
    clock.advance(seconds=1)
    assert await ctx.bot_runtime.fire_timeouts() == 1
    assert outbox.sent == [(user.id, "console", "You are in the lobby.")]
    assert await ctx.bot_runtime.fire_timeouts() == 0
    async with ctx.db.read() as session:
        row = await session.scalar(select(BotState).where(BotState.user_id == user.id))
    assert row is not None
    assert (row.state, row.idle_deadline) == ("lobby", None)
    assert await say(ctx, user, "quiz") == ["Quiz time. You have 60 seconds per answer."]
    await ctx.close()


async def test_answering_in_time_pushes_the_deadline(config: Settings, clock: ManualClock) -> None:
    ctx = await start(config, clock)
    user = await console_user(ctx)
    await say(ctx, user, "quiz")
    clock.advance(seconds=50)
    await say(ctx, user, "a")
    clock.advance(seconds=50)
    assert await ctx.bot_runtime.fire_timeouts() == 0
    async with ctx.db.read() as session:
        row = await session.scalar(select(BotState))
    assert row is not None and row.idle_deadline == clock.now + timedelta(seconds=10)
    await ctx.close()


async def test_one_identity_maps_to_one_account(config: Settings, clock: ManualClock) -> None:
    ctx = await start(config, clock)
    first = await console_user(ctx, "ada")
    again = await console_user(ctx, "ada")
    other = await console_user(ctx, "bob")
    assert first.id == again.id != other.id
    async with ctx.db.read() as session:
        identities = list(await session.scalars(select(ChannelIdentity)))
    assert sorted(i.external_id for i in identities) == ["ada", "bob"]
    await ctx.close()


def test_a_channel_set_to_an_unknown_bot_stops_the_start(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, secret_key=SECRET, channel_bots="whatsapp=nobody")
    with pytest.raises(SettingsError, match="channel 'whatsapp' is set to bot 'nobody'"):
        build_context(settings)


def test_an_unimportable_bot_module_stops_the_start(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, secret_key=SECRET, bot_modules="no.such.module")
    with pytest.raises(SettingsError, match=r"bot module 'no\.such\.module' cannot be imported"):
        build_context(settings)
