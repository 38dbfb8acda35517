"""Bot chats as conversations: each user's chat with a bot is a ``bot`` conversation whose
messages are in the event log like any other chat (history, live view for moderators,
annotation and datasets).

Each bot speaks as its own account (``bot-<name>``, no password), the conversation's assignee;
the user is its owner. One open conversation per user and bot, created on first contact.

The exchanges are written in the bot steps' own transaction (so the transcript can never
disagree with the bots' state), a batch of them with a few bulk statements in the step that
writes the bots' outcomes: the messages and their ``chat_message`` events exactly as
``append_message`` writes people's messages, with ``seq`` numbers taken from each
conversation's ``last_seq``. ``record`` returns the events' envelopes, which
:meth:`ConversationTranscript.publish` sends once the transaction has committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatforge.bots.seams import Exchange, Person
from chatforge.realtime.envelope import Envelope
from chatforge.services.eventlog import INSERT_ENCODED_EVENT, EventLog, encoded_event
from chatforge.services.messages import BODY_MAX
from chatforge.store.bulk import among, padded, unindexed
from chatforge.store.models import (
    Base,
    Conversation,
    ConversationKind,
    ConversationStatus,
    Message,
    Participant,
    Role,
    User,
)
from chatforge.store.types import utcnow
from chatforge.store.write_lane import Statements

_CONVERSATIONS = Base.metadata.tables[Conversation.__tablename__]
_MESSAGES = Base.metadata.tables[Message.__tablename__]
_PARTICIPANTS = Base.metadata.tables[Participant.__tablename__]
_USERS = Base.metadata.tables[User.__tablename__]
_SPEAKER = select(_USERS.c.id, _USERS.c.display_name).where(_USERS.c.username == bindparam("name"))
_NEW_USER = insert(_USERS)
_NEW_CONVERSATION = insert(_CONVERSATIONS)
_NEW_PARTICIPANT = insert(_PARTICIPANTS)
_NEW_MESSAGE = insert(_MESSAGES)
_LAST_SEQ = update(_CONVERSATIONS).where(_CONVERSATIONS.c.id == bindparam("cid"))


def bot_username(bot: str) -> str:
    return f"bot-{bot}"[:32]


@dataclass(frozen=True, slots=True)
class Speaker:
    """The account a bot speaks as."""

    id: int
    display_name: str


def bot_account(statements: Statements, bot: str) -> Speaker:
    """The account a bot speaks as, created in the caller's transaction the first time.

    Two processes creating it at once collide on the unique username; the loser's transaction
    rolls back and the channel gateway retries it, finding the account.
    """
    name = bot_username(bot)
    found = statements.rows(_SPEAKER, {"name": name})
    if not found:
        account = {
            "username": name,
            "display_name": bot[:64],
            "password_hash": None,
            "role": Role.user,
            "is_active": True,
            "token_version": 0,
            "created_at": utcnow(),
        }
        statements.run(_NEW_USER, [account])
        found = statements.rows(_SPEAKER, {"name": name})
    return Speaker(found[0][0], found[0][1])


@cache
def _open_conversations(size: int) -> Select[int, int, int]:
    """The open conversations of ``size`` users with one bot, oldest first, locked on
    PostgreSQL (concurrent writers of one conversation queue there, so ``seq`` numbers stay
    consecutive)."""
    return (
        select(_CONVERSATIONS.c.owner_id, _CONVERSATIONS.c.id, _CONVERSATIONS.c.last_seq)
        .where(
            # Found through the owners' index: every bot conversation has this kind, status
            # and assignee.
            unindexed(_CONVERSATIONS.c.kind) == ConversationKind.bot,
            among(_CONVERSATIONS.c.owner_id, "owner", size),
            unindexed(_CONVERSATIONS.c.assignee_id) == bindparam("speaker"),
            unindexed(_CONVERSATIONS.c.status) == ConversationStatus.active,
        )
        .order_by(_CONVERSATIONS.c.id)
        .with_for_update()
    )


def open_bot_conversations(
    statements: Statements, speaker: Speaker, channels: dict[int, str]
) -> dict[int, tuple[int, int]]:
    """Each user's open conversation with the bot (``channels`` maps user id to the channel of
    their first message), opened for those who have none; returns ``(id, last_seq)`` per user.
    """
    size, owners = padded("owner", channels)
    query, params = _open_conversations(size), {"speaker": speaker.id, **owners}
    # Oldest first, so each user ends up with their newest one.
    opened = {owner: (cid, seq) for owner, cid, seq in statements.rows(query, params)}
    new = [user_id for user_id in channels if user_id not in opened]
    if not new:
        return opened
    now = utcnow()
    statements.run(
        _NEW_CONVERSATION,
        [
            {
                "kind": ConversationKind.bot,
                "status": ConversationStatus.active,
                "title": speaker.display_name,
                "owner_id": user_id,
                "assignee_id": speaker.id,
                "channel": channels[user_id],
                "last_seq": 0,
                "created_at": now,
            }
            for user_id in new
        ],
    )
    opened = {owner: (cid, seq) for owner, cid, seq in statements.rows(query, params)}
    statements.run(
        _NEW_PARTICIPANT,
        [
            row
            for user_id in new
            for row in (
                {
                    "conversation_id": opened[user_id][0],
                    "user_id": user_id,
                    "role": "owner",
                    "joined_at": now,
                },
                {
                    "conversation_id": opened[user_id][0],
                    "user_id": speaker.id,
                    "role": "bot",
                    "joined_at": now,
                },
            )
        ],
    )
    return opened


async def find_bot_conversation(session: AsyncSession, bot: str, user_id: int) -> int | None:
    """The user's open conversation with ``bot``, without opening one."""
    found = await session.scalar(
        select(Conversation.id)
        # Through the owner's index: the bot is the assignee of every one of its conversations.
        .join(User, User.id == unindexed(Conversation.assignee_id))
        .where(
            unindexed(Conversation.kind) == ConversationKind.bot,
            Conversation.owner_id == user_id,
            User.username == bot_username(bot),
            unindexed(Conversation.status) == ConversationStatus.active,
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

    def record(self, statements: Statements, exchanges: Sequence[Exchange]) -> list[Envelope]:
        """Append each exchange (the user's message, then the bot's replies) to the user's
        conversation with the bot, in order; returns the envelopes of their events."""
        kept = [(exchange, _lines(exchange)) for exchange in exchanges]
        kept = [(exchange, lines) for exchange, lines in kept if lines]
        if not kept:
            return []
        speakers = {name: bot_account(statements, name) for name in {e.bot for e, _ in kept}}
        conversations: dict[tuple[str, int], tuple[int, int]] = {}
        for name, speaker in speakers.items():
            channels: dict[int, str] = {}
            for exchange, _ in kept:
                if exchange.bot == name:
                    channels.setdefault(exchange.person.id, exchange.channel)
            opened = open_bot_conversations(statements, speaker, channels)
            conversations.update(((name, user_id), found) for user_id, found in opened.items())
        now = utcnow()
        last_seq = dict(conversations.values())
        messages: list[dict[str, Any]] = []
        authors: list[tuple[int, str]] = []
        for exchange, lines in kept:
            cid, _ = conversations[(exchange.bot, exchange.person.id)]
            speaker = speakers[exchange.bot]
            for mine, text in lines:
                last_seq[cid] += 1
                sender: Person = exchange.person if mine else speaker
                authors.append((sender.id, sender.display_name))
                messages.append(
                    {
                        "conversation_id": cid,
                        "seq": last_seq[cid],
                        "sender_id": sender.id,
                        "body": text,
                        "excluded": False,
                        "created_at": now,
                    }
                )
        ids = statements.insert_ids(_NEW_MESSAGE, messages)
        events: list[dict[str, Any]] = []
        envelopes: list[Envelope] = []
        for message, message_id, (sender_id, sender_name) in zip(
            messages, ids, authors, strict=True
        ):
            # The payload of append_message's chat_message event, for the same message.
            payload = {
                "message_id": message_id,
                "sender_id": sender_id,
                "sender_name": sender_name,
                "body": message["body"],
                "client_id": None,
                "recipient_id": None,
                "reply_to": None,
            }
            event, envelope = encoded_event(
                type="chat_message",
                conversation_id=message["conversation_id"],
                seq=message["seq"],
                actor_id=sender_id,
                created_at=now,
                payload=payload,
            )
            events.append(event)
            envelopes.append(envelope)
        statements.run(INSERT_ENCODED_EVENT, events)
        statements.run(_LAST_SEQ, [{"cid": cid, "last_seq": seq} for cid, seq in last_seq.items()])
        return envelopes

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Publish the events ``record`` wrote, once their transaction has committed (a
        failure is logged, not raised: see :meth:`EventLog.published`)."""
        await self.log.published(envelopes)


def _lines(exchange: Exchange) -> list[tuple[bool, str]]:
    """The exchange's non-empty texts, ``True`` for the user's own."""
    lines = [(True, _clean(exchange.inbound)), *((False, _clean(t)) for t in exchange.replies)]
    return [(mine, text) for mine, text in lines if text.strip()]
