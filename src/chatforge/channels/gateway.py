"""The channel gateway: inbound messages to a bot or a conversation, outbound to the platform.

For each inbound message, one write transaction claims the platform's message id (a retried
webhook stops here), finds or creates the sender's account, and either runs the channel's bot
or notes that the user is in a hand-off conversation. After it commits, the bot's after-commit
work runs, or the message is forwarded to the conversation.

The web chat widget comes in through :meth:`ChannelGateway.receive_from` with the signed-in
user's own account (no channel identity) and the socket's ``client_id`` as the message id.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError

from chatforge.bots.registry import BotRegistry
from chatforge.bots.runtime import BotReply, BotRuntime
from chatforge.bots.seams import HandoffDesk
from chatforge.channels.base import Channel, InboundMessage
from chatforge.channels.identity import external_id_of, normalize, user_for_identity
from chatforge.channels.inbound import claim_inbound
from chatforge.store.database import Database
from chatforge.store.models import User

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Delivery:
    """The result of one inbound message: replies to send back on the same channel."""

    duplicate: bool = False
    user_id: int | None = None
    external_id: str | None = None
    replies: list[str] = field(default_factory=list)
    # The hand-off's notice, when the bot passed the user to a human (also the last reply).
    handoff_notice: str | None = None
    # The conversation the message was forwarded to instead of the bot.
    forwarded_to: int | None = None


class ChannelGateway:
    def __init__(
        self,
        db: Database,
        registry: BotRegistry,
        runtime: BotRuntime,
        channels: Mapping[str, Channel],
    ) -> None:
        self.db = db
        self.registry = registry
        self.runtime = runtime
        self.channels = dict(channels)

    @property
    def handoff(self) -> HandoffDesk:
        return self.runtime.handoff

    async def receive(self, message: InboundMessage) -> Delivery:
        """Handle one inbound message once; raises ``Invalid`` for a malformed sender."""
        external_id = normalize(message.channel, message.sender)
        try:
            return await self._receive(message, external_id)
        except IntegrityError:
            # Two first messages of a new sender raced to create their account (PostgreSQL);
            # the loser's transaction rolled back entirely, so handling it again is safe.
            return await self._receive(message, external_id)

    async def receive_from(self, user: User, message: InboundMessage) -> Delivery:
        """Handle a message of a signed-in ``user`` (the web widget) once per message id."""
        return await self._receive(message, None, user.id)

    async def _receive(
        self, message: InboundMessage, external_id: str | None, user_id: int | None = None
    ) -> Delivery:
        reply: BotReply | None = None
        conversation_id: int | None = None
        async with self.runtime.transaction() as session:
            if not await claim_inbound(session, message.channel, message.message_id):
                return Delivery(duplicate=True, user_id=user_id, external_id=external_id)
            if user_id is not None:
                found = await session.get(User, user_id)
                if found is None:
                    return Delivery(user_id=user_id)
                user = found
            else:
                assert external_id is not None
                user = await user_for_identity(
                    session, message.channel, external_id, message.profile_name
                )
            delivery = Delivery(user_id=user.id, external_id=external_id)
            if not user.is_active:
                return delivery
            conversation_id = await self.handoff.conversation_for(session, user.id)
            bot = self.registry.for_channel(message.channel)
            if conversation_id is None and bot is not None:
                reply = await self.runtime.handle(session, bot, user, message.channel, message.text)
        if conversation_id is not None:
            await self.handoff.forward(
                conversation_id,
                delivery.user_id or 0,
                message.text,
                client_id=f"{message.channel}:{message.message_id}"[:64],
            )
            delivery.forwarded_to = conversation_id
        elif reply is not None:
            delivery.handoff_notice = await self.runtime.after_commit(reply)
            delivery.replies = list(reply.replies)
        return delivery

    async def send(self, user_id: int, channel: str, text: str) -> None:
        """Send ``text`` to a user on ``channel`` (the runtime's and moderators' outbox).

        Raises ``ChannelError`` when the platform refuses; logs and drops the message when the
        channel is not configured or the user has no identity on it.
        """
        sender = self.channels.get(channel)
        if sender is None:
            log.warning("no %s channel configured; message to user %s dropped", channel, user_id)
            return
        async with self.db.read() as session:
            external_id = await external_id_of(session, user_id, channel)
        if external_id is None:
            log.warning("user %s has no %s identity; message dropped", user_id, channel)
            return
        await sender.send_all(external_id, [text])
