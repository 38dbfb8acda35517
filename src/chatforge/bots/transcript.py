"""Bot chats as conversations: each user's chat with a bot is a ``bot`` conversation whose
messages go through the message service, so they are in the event log like any other chat
(history, live view for moderators, annotation and datasets).

Each bot speaks as its own account (``bot-<name>``, no password), the conversation's assignee;
the user is its owner. One open conversation per user and bot, created on first contact.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from chatforge.services.messages import BODY_MAX, MessageService
from chatforge.store.database import Database
from chatforge.store.models import (
    Conversation,
    ConversationKind,
    ConversationStatus,
    Participant,
    Role,
    User,
)
from chatforge.store.types import utcnow


def bot_username(bot: str) -> str:
    return f"bot-{bot}"[:32]


class ConversationTranscript:
    def __init__(self, db: Database, messages: MessageService) -> None:
        self.db = db
        self.messages = messages
        self._bot_users: dict[str, User] = {}

    async def bot_user(self, bot: str) -> User:
        """The account a bot speaks as, created the first time it is needed."""
        cached = self._bot_users.get(bot)
        if cached is not None:
            return cached
        name = bot_username(bot)
        async with self.db.read() as session:
            user = await session.scalar(select(User).where(User.username == name))
        if user is None:
            try:
                async with self.db.write() as session:
                    user = User(
                        username=name, display_name=bot[:64], password_hash=None, role=Role.user
                    )
                    session.add(user)
            except IntegrityError:
                async with self.db.read() as session:
                    user = await session.scalar(select(User).where(User.username == name))
                assert user is not None
        self._bot_users[bot] = user
        return user

    async def conversation_for(self, bot_user: User, user_id: int, channel: str) -> int:
        """The user's open conversation with the bot, opened if there is none."""
        async with self.db.write() as session:
            found = await session.scalar(
                select(Conversation.id)
                .where(
                    Conversation.kind == ConversationKind.bot,
                    Conversation.owner_id == user_id,
                    Conversation.assignee_id == bot_user.id,
                    Conversation.status == ConversationStatus.active,
                )
                .order_by(Conversation.id.desc())
                .limit(1)
            )
            if found is not None:
                return int(found)
            conversation = Conversation(
                kind=ConversationKind.bot,
                status=ConversationStatus.active,
                title=bot_user.display_name,
                owner_id=user_id,
                assignee_id=bot_user.id,
                channel=channel,
                created_at=utcnow(),
            )
            session.add(conversation)
            await session.flush()
            session.add_all(
                [
                    Participant(conversation_id=conversation.id, user_id=user_id, role="owner"),
                    Participant(conversation_id=conversation.id, user_id=bot_user.id, role="bot"),
                ]
            )
            return conversation.id

    async def record(
        self, *, bot: str, user_id: int, channel: str, inbound: str, replies: list[str]
    ) -> None:
        """Append the user's message and the bot's replies to their bot conversation."""
        lines = [(True, inbound), *((False, text) for text in replies)]
        # The message service refuses NUL characters and over-long bodies; a transcript keeps
        # what it can rather than nothing.
        lines = [(mine, text.replace("\x00", "")[:BODY_MAX]) for mine, text in lines]
        lines = [(mine, text) for mine, text in lines if text.strip()]
        if not lines:
            return
        speaker = await self.bot_user(bot)
        conversation_id = await self.conversation_for(speaker, user_id, channel)
        async with self.db.read() as session:
            user = await session.get(User, user_id)
        if user is None:
            return
        for mine, text in lines:
            await self.messages.post(user if mine else speaker, conversation_id, text)
