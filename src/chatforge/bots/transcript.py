"""Bot chats as conversations: each user's chat with a bot is a ``bot`` conversation whose
messages are in the event log like any other chat (history, live view for moderators,
annotation and datasets).

Each bot speaks as its own account (``bot-<name>``, no password), the conversation's assignee;
the user is its owner. One open conversation per user and bot, created on first contact.

The exchange is written in the bot step's own transaction (one transaction per inbound
message, and the transcript can never disagree with the bot's state), with the same
``append_message`` that people's messages use; the events are published after the commit by
the event log's transaction, which the runtime uses.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chatforge.services.eventlog import EventLog
from chatforge.services.messages import BODY_MAX, append_message
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


async def bot_account(session: AsyncSession, bot: str) -> User:
    """The account a bot speaks as, created in the caller's transaction the first time.

    Two processes creating it at once collide on the unique username; the loser's transaction
    rolls back and the channel gateway retries it, finding the account.
    """
    name = bot_username(bot)
    user = await session.scalar(select(User).where(User.username == name))
    if user is None:
        user = User(username=name, display_name=bot[:64], password_hash=None, role=Role.user)
        session.add(user)
        await session.flush()
    return user


async def open_bot_conversation(
    session: AsyncSession, speaker: User, user_id: int, channel: str
) -> int:
    """The user's open conversation with the bot, opened if there is none."""
    found = await session.scalar(
        select(Conversation.id)
        .where(
            Conversation.kind == ConversationKind.bot,
            Conversation.owner_id == user_id,
            Conversation.assignee_id == speaker.id,
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
        title=speaker.display_name,
        owner_id=user_id,
        assignee_id=speaker.id,
        channel=channel,
        created_at=utcnow(),
    )
    session.add(conversation)
    await session.flush()
    session.add_all(
        [
            Participant(conversation_id=conversation.id, user_id=user_id, role="owner"),
            Participant(conversation_id=conversation.id, user_id=speaker.id, role="bot"),
        ]
    )
    return conversation.id


async def find_bot_conversation(session: AsyncSession, bot: str, user_id: int) -> int | None:
    """The user's open conversation with ``bot``, without opening one."""
    found = await session.scalar(
        select(Conversation.id)
        .join(User, User.id == Conversation.assignee_id)
        .where(
            Conversation.kind == ConversationKind.bot,
            Conversation.owner_id == user_id,
            User.username == bot_username(bot),
            Conversation.status == ConversationStatus.active,
        )
        .order_by(Conversation.id.desc())
        .limit(1)
    )
    return int(found) if found is not None else None


def _clean(text: str) -> str:
    # The message service refuses NUL characters and over-long bodies; a transcript keeps what
    # it can rather than nothing.
    return text.replace("\x00", "")[:BODY_MAX]


class ConversationTranscript:
    def __init__(self, log: EventLog) -> None:
        self.log = log

    async def record(
        self,
        session: AsyncSession,
        *,
        bot: str,
        user_id: int,
        channel: str,
        inbound: str,
        replies: list[str],
    ) -> None:
        """Append the user's message and the bot's replies to their bot conversation."""
        lines = [(True, _clean(inbound)), *((False, _clean(text)) for text in replies)]
        lines = [(mine, text) for mine, text in lines if text.strip()]
        if not lines:
            return
        user = await session.get(User, user_id)
        if user is None:
            return
        speaker = await bot_account(session, bot)
        conversation_id = await open_bot_conversation(session, speaker, user_id, channel)
        for mine, text in lines:
            await append_message(
                self.log, session, user if mine else speaker, conversation_id, text
            )
