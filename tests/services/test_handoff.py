"""Hand-off from a bot to a human (B4) through the services: open, forward, relay, end."""

from __future__ import annotations

import itertools

from sqlalchemy import select

from chatforge.bots.seams import HandoffTicket
from chatforge.channels.base import Channel, InboundMessage
from chatforge.channels.relay import ENDED_NOTICE
from chatforge.context import AppContext
from chatforge.store.models import Conversation, ConversationStatus, Message, Role, Topic, User
from chatforge.store.write_lane import in_session
from tests.factories import make_topic, make_user

NUMBER = "+27821234567"
_sids = itertools.count(1)


class RecordingChannel(Channel):
    name = "whatsapp"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, external_id: str, text: str) -> None:
        self.sent.append((external_id, text))


def whatsapp(text: str, sid: str | None = None) -> InboundMessage:
    return InboundMessage(
        channel="whatsapp",
        message_id=sid or f"SM{next(_sids):032x}",
        sender=f"whatsapp:{NUMBER}",
        text=text,
        profile_name="Thandi",
    )


def install_channel(ctx: AppContext) -> RecordingChannel:
    channel = RecordingChannel()
    ctx.channels.channels["whatsapp"] = channel
    return channel


async def conversations(ctx: AppContext) -> list[Conversation]:
    async with ctx.db.read() as session:
        return list(
            await session.scalars(select(Conversation).where(Conversation.kind == "support"))
        )


async def open_handoff(ctx: AppContext, user_id: int) -> int | None:
    """The user's open hand-off on a messaging channel, as the gateway's batches see it."""
    async with ctx.db.read() as session:
        found = await session.run_sync(
            in_session, lambda statements: ctx.handoff.conversations_for(statements, [user_id])
        )
    return found.get(user_id)


async def bodies(ctx: AppContext, conversation_id: int) -> list[str]:
    async with ctx.db.read() as session:
        rows = await session.scalars(
            select(Message.body)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.seq)
        )
        return list(rows)


async def test_mentor_opens_a_pending_whatsapp_conversation_on_the_handoff_topic(
    ctx: AppContext,
) -> None:
    delivery = await ctx.channels.receive(whatsapp("mentor"))

    assert delivery.handoff_notice == (
        "A mentor will answer you here shortly; you are number 1 in the queue."
    )
    assert delivery.replies[-1] == delivery.handoff_notice
    [conversation] = await conversations(ctx)
    assert conversation.status is ConversationStatus.pending
    assert conversation.channel == "whatsapp"
    assert conversation.owner_id == delivery.user_id
    async with ctx.db.read() as session:
        topic = await session.get(Topic, conversation.topic_id)
        assert topic is not None and topic.name == "Mentoring"
    assert await open_handoff(ctx, delivery.user_id or 0) == conversation.id
    moderator = await make_user(ctx, Role.moderator)
    [queued] = await ctx.conversations.support_queue(moderator)
    assert (queued.id, queued.channel, queued.topic_name) == (
        conversation.id,
        "whatsapp",
        "Mentoring",
    )


async def test_a_topic_the_bot_names_is_used_and_a_second_handoff_returns_the_same_one(
    ctx: AppContext,
) -> None:
    admin = await make_user(ctx, Role.admin)
    topic = await make_topic(ctx, admin, "SQL help")
    user = await make_user(ctx)
    ticket = HandoffTicket(
        bot="challenge", user_id=user.id, channel="web", topic="sql HELP", note=""
    )

    first = await ctx.handoff.open(ticket)
    again = await ctx.handoff.open(ticket)

    [conversation] = await conversations(ctx)
    assert conversation.topic_id == topic.id
    assert conversation.channel == "web"
    assert (
        first
        == "A mentor will answer you on the support page shortly; you are number 1 in the queue."
    )
    assert again == first
    # Web hand-offs continue on the support page; the widget keeps talking to the bot.
    assert await open_handoff(ctx, user.id) is None
    assert await ctx.handoff.open_conversation_of(user.id) == conversation.id


async def test_channel_messages_go_to_the_moderator_and_replies_go_back_until_it_ends(
    ctx: AppContext,
) -> None:
    channel = install_channel(ctx)
    opened = await ctx.channels.receive(whatsapp("mentor"))
    [conversation] = await conversations(ctx)

    # While it waits, the user's messages are the conversation's, not the bot's.
    retried = whatsapp("Is anyone there?")
    first = await ctx.channels.receive(retried)
    assert (first.replies, first.forwarded_to) == ([], conversation.id)
    assert (await ctx.channels.receive(retried)).duplicate  # Twilio's retry: stored once
    assert await bodies(ctx, conversation.id) == ["Is anyone there?"]

    moderator = await make_user(ctx, Role.moderator)
    await ctx.support.claim(moderator, conversation.id)
    result = await ctx.messages.post(moderator, conversation.id, "Hi Thandi, how can I help?")
    await ctx.relay.drain()
    name = moderator.display_name
    assert channel.sent == [
        (NUMBER, f"{name} is here to help you. Write here to talk to them."),
        (NUMBER, f"{name}: Hi Thandi, how can I help?"),
    ]
    assert result.seq > 0

    # The user's own messages are not echoed back to their phone.
    await ctx.channels.receive(whatsapp("My SQL query is slow"))
    await ctx.relay.drain()
    assert len(channel.sent) == 2
    assert await bodies(ctx, conversation.id) == [
        "Is anyone there?",
        "Hi Thandi, how can I help?",
        "My SQL query is slow",
    ]

    await ctx.support.end(moderator, conversation.id)
    await ctx.relay.drain()
    assert channel.sent[-1] == (NUMBER, ENDED_NOTICE)

    # The bot is back: the next message is answered by it, not stored in the conversation.
    back = await ctx.channels.receive(whatsapp("help"))
    assert back.forwarded_to is None
    assert back.replies and "Send a category and a level" in back.replies[0]
    assert len(await bodies(ctx, conversation.id)) == 3
    assert opened.user_id == back.user_id


async def test_a_failing_channel_does_not_fail_the_moderators_message(ctx: AppContext) -> None:
    class BrokenChannel(RecordingChannel):
        async def send(self, external_id: str, text: str) -> None:
            raise RuntimeError("Twilio is down")

    ctx.channels.channels["whatsapp"] = BrokenChannel()
    await ctx.channels.receive(whatsapp("human"))
    [conversation] = await conversations(ctx)
    moderator = await make_user(ctx, Role.moderator)
    await ctx.support.claim(moderator, conversation.id)

    result = await ctx.messages.post(moderator, conversation.id, "Still here")
    await ctx.relay.drain()

    assert not result.duplicate
    assert await bodies(ctx, conversation.id) == ["Still here"]


async def test_without_an_active_topic_the_user_is_told_nobody_can_take_over(
    ctx: AppContext,
) -> None:
    admin = await make_user(ctx, Role.admin)
    await ctx.handoff.open(
        HandoffTicket(bot="challenge", user_id=admin.id, channel="web", topic=None, note="")
    )
    [made] = await conversations(ctx)
    await ctx.support.end(admin, made.id)
    mentoring = await ctx.topics.list(include_inactive=True)
    await ctx.topics.update(admin, mentoring[0].id, active=False)

    user: User = await make_user(ctx)
    notice = await ctx.handoff.open(
        HandoffTicket(bot="challenge", user_id=user.id, channel="web", topic=None, note="")
    )

    assert notice.startswith("Sorry, no mentor can take over")
    assert len(await conversations(ctx)) == 1
