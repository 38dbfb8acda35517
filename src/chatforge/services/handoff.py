"""Hand-off from a bot to a human (B4), over the support workflow.

A bot's hand-off opens a pending support conversation for the user, with ``channel`` set to
where they talk (``whatsapp``, ``messenger``, ``web``), so it waits in the same queue as web
conversations. While it is open (pending or active) the channel gateway sends the user's channel
messages here instead of to the bot; once it is done, the bot answers again. Web users keep
talking to the bot in the widget: their hand-off continues on the support chat page.

The topic is the one the bot names, if that is an active topic; otherwise the configured
``CHATFORGE_HANDOFF_TOPIC`` (created the first time it is needed); if an admin deactivated that
one, the first active topic.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from functools import cache

from sqlalchemy import Select, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from chatforge.bots.seams import HandoffTicket
from chatforge.errors import Conflict, Invalid
from chatforge.services.access import OPEN
from chatforge.services.messages import BODY_MAX, MessageService
from chatforge.services.support import SupportService
from chatforge.store.bulk import among, padded, unindexed
from chatforge.store.database import Database
from chatforge.store.models import (
    Conversation,
    ConversationKind,
    ConversationStatus,
    Topic,
    User,
)
from chatforge.store.types import utcnow
from chatforge.store.write_lane import Statements

log = logging.getLogger(__name__)

WEB = "web"
NOBODY = "Sorry, no mentor can take over this chat right now. Send help to see what I can do."


@cache
def _open_handoffs(size: int) -> Select[int, int]:
    """The newest open hand-off on a messaging channel of each of ``size`` owners."""
    return (
        select(Conversation.owner_id, func.max(Conversation.id))
        .where(
            # Found through the owners' index, not by reading every open support conversation.
            unindexed(Conversation.kind) == ConversationKind.support,
            among(Conversation.owner_id, "owner", size),
            # Not IN (a list parameter is expanded per execution, which the write lane does not do).
            or_(*(unindexed(Conversation.status) == status for status in sorted(OPEN))),
            Conversation.channel != WEB,
        )
        .group_by(Conversation.owner_id)
    )


class SupportHandoffDesk:
    """The :class:`~chatforge.bots.seams.HandoffDesk` of a running chatforge."""

    def __init__(
        self, db: Database, support: SupportService, messages: MessageService, *, topic: str
    ) -> None:
        self.db = db
        self.support = support
        self.messages = messages
        self.default_topic = topic.strip()

    async def open(self, ticket: HandoffTicket) -> str:
        """Open a pending support conversation for the ticket's user; returns what to tell them.

        Called after the bot's step has committed. A user who already has an open conversation
        is sent back to it (one open conversation per user). Never raises for a missing topic:
        the user is told that nobody can take over.
        """
        async with self.db.read() as session:
            user = await session.get(User, ticket.user_id)
            topic_id = await self._named_topic(session, ticket.topic)
        if user is None or not user.is_active:
            return NOBODY
        if topic_id is None:
            topic_id = await self._default_topic()
        if topic_id is None:
            return NOBODY
        result = await self.support.open(user, topic_id, channel=ticket.channel)
        conversation = result.conversation
        if conversation.channel != ticket.channel:
            where = (
                "on the support page"
                if conversation.channel == WEB
                else (f"on {conversation.channel}")
            )
            return f"You already have a conversation with a mentor open {where}; continue it there."
        here = "here" if ticket.channel != WEB else "on the support page"
        if conversation.status is ConversationStatus.active:
            return f"{conversation.assignee_name} is with you; write {here}."
        found = await self.support.queue_position(user, conversation.id)
        place = f"; you are number {found[0]} in the queue" if found else ""
        return f"A mentor will answer you {here} shortly{place}."

    def conversations_for(
        self, statements: Statements, user_ids: Collection[int]
    ) -> dict[int, int]:
        """Each user's open hand-off on a messaging channel, read in the caller's transaction.

        Web conversations are left out: on the web the support chat page is where people talk
        to the moderator, and the widget keeps talking to the bot.
        """
        if not user_ids:
            return {}
        size, owners = padded("owner", user_ids)
        found = statements.rows(_open_handoffs(size), owners)
        return {int(owner): int(conversation) for owner, conversation in found}

    async def open_conversation_of(self, user_id: int) -> int | None:
        """The user's open support conversation on any channel (for links to it), or None."""
        async with self.db.read() as session:
            found = await session.scalar(
                select(Conversation.id)
                .where(
                    unindexed(Conversation.kind) == ConversationKind.support,
                    Conversation.owner_id == user_id,
                    unindexed(Conversation.status).in_(OPEN),
                )
                .order_by(Conversation.id.desc())
                .limit(1)
            )
        return int(found) if found is not None else None

    async def forward(self, conversation_id: int, user_id: int, text: str, client_id: str) -> None:
        """Post the user's channel message into their conversation, once per ``client_id``.

        A message with no text (a photo without a caption) is skipped. If the conversation
        ended between the gateway's check and this post, the message is dropped with a warning:
        the next one goes to the bot.
        """
        body = text.replace("\x00", "")[:BODY_MAX]
        if not body.strip():
            log.info("empty channel message of user %s not forwarded", user_id)
            return
        async with self.db.read() as session:
            user = await session.get(User, user_id)
        if user is None:
            return
        try:
            await self.messages.post(user, conversation_id, body, client_id=client_id)
        except (Conflict, Invalid) as exc:
            log.warning(
                "message of user %s not forwarded to conversation %s: %s",
                user_id,
                conversation_id,
                exc.message,
            )

    async def _named_topic(self, session: AsyncSession, name: str | None) -> int | None:
        if not name or not name.strip():
            return None
        found = await session.scalar(
            select(Topic.id).where(
                func.lower(Topic.name) == name.strip().lower(), Topic.is_active.is_(True)
            )
        )
        return int(found) if found is not None else None

    async def _default_topic(self) -> int | None:
        async with self.db.read() as session:
            topic = await session.scalar(select(Topic).where(Topic.name == self.default_topic))
            if topic is not None:
                if topic.is_active:
                    return topic.id
                # An admin switched it off: use any active topic rather than none.
                first = await session.scalar(
                    select(Topic.id).where(Topic.is_active.is_(True)).order_by(Topic.id).limit(1)
                )
                return int(first) if first is not None else None
        try:
            async with self.db.write() as session:
                created = Topic(
                    name=self.default_topic,
                    description="Conversations handed over by a bot.",
                    created_at=utcnow(),
                )
                session.add(created)
                await session.flush()
                return created.id
        except IntegrityError:
            # Another hand-off created it at the same moment.
            async with self.db.read() as session:
                again = await session.scalar(
                    select(Topic.id).where(Topic.name == self.default_topic)
                )
            return int(again) if again is not None else None
