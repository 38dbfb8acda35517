"""The web chat widget (B2): a signed-in user talks to the web channel's bot over ``/ws``.

The widget is a channel like WhatsApp, without a platform: the user is their own account (no
channel identity), the message id is the socket's ``client_id`` (so a resend after a reconnect is
handled once), and the bot's replies are not sent back by us but read by the widget as events of
the user's ``bot`` conversation, which the transcript writes with their ``seq``. A hand-off from
the widget opens a support conversation on the ``web`` channel, which continues on the support
chat page.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from chatforge.bots.machine import BotDefinition
from chatforge.bots.registry import BotRegistry
from chatforge.bots.transcript import find_bot_conversation
from chatforge.channels.base import InboundMessage
from chatforge.channels.gateway import ChannelGateway
from chatforge.errors import NotFound
from chatforge.services.handoff import SupportHandoffDesk
from chatforge.services.messages import check_body, check_client_id
from chatforge.store.database import Database
from chatforge.store.models import User

CHANNEL = "web"


@dataclass(frozen=True, slots=True)
class WidgetState:
    """What the widget shows when it opens: the bot, the chat so far, an open hand-off."""

    bot: str
    description: str
    conversation_id: int | None
    support_conversation_id: int | None


@dataclass(frozen=True, slots=True)
class WidgetReply:
    """The answer to one widget message; the bot's replies arrive as conversation events."""

    conversation_id: int | None
    duplicate: bool
    handoff_notice: str | None
    support_conversation_id: int | None


class WebWidget:
    def __init__(
        self,
        db: Database,
        registry: BotRegistry,
        gateway: ChannelGateway,
        handoff: SupportHandoffDesk,
    ) -> None:
        self.db = db
        self.registry = registry
        self.gateway = gateway
        self.handoff = handoff

    def bot(self) -> BotDefinition:
        """The bot that answers on the web; raises ``NotFound`` when none is enabled."""
        bot = self.registry.for_channel(CHANNEL)
        if bot is None:
            raise NotFound("No bot answers on the web here.", code="no_bot")
        return bot

    async def state(self, user: User) -> WidgetState:
        """The web bot and ``user``'s chat with it so far; raises ``NotFound`` with no bot."""
        bot = self.bot()
        async with self.db.read() as session:
            conversation_id = await find_bot_conversation(session, bot.name, user.id)
        return WidgetState(
            bot=bot.name,
            description=bot.description,
            conversation_id=conversation_id,
            support_conversation_id=await self.handoff.open_conversation_of(user.id),
        )

    async def send(self, user: User, body: str, client_id: str | None = None) -> WidgetReply:
        """Give ``body`` to the web bot as ``user``; once per ``client_id``.

        Raises ``Invalid`` for a bad body or client id and ``NotFound`` when no bot answers on
        the web.
        """
        check_body(body)
        check_client_id(client_id)
        bot = self.bot()
        message = InboundMessage(
            channel=CHANNEL,
            message_id=f"{user.id}:{client_id or uuid.uuid4().hex}",
            sender=str(user.id),
            text=body,
        )
        delivery = await self.gateway.receive_from(user, message)
        async with self.db.read() as session:
            conversation_id = await find_bot_conversation(session, bot.name, user.id)
        support_id = None
        if delivery.handoff_notice is not None:
            support_id = await self.handoff.open_conversation_of(user.id)
        return WidgetReply(
            conversation_id=conversation_id,
            duplicate=delivery.duplicate,
            handoff_notice=delivery.handoff_notice,
            support_conversation_id=support_id,
        )
