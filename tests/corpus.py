"""Finished conversations for the annotation and dataset tests, written through the real
message path (``append_message`` in an event-log transaction)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update

from chatforge.context import AppContext
from chatforge.services.messages import append_message
from chatforge.store.models import (
    Conversation,
    ConversationKind,
    ConversationStatus,
    Message,
    Participant,
    Rating,
    User,
)
from chatforge.store.types import utcnow


@dataclass(frozen=True)
class Said:
    sender: User
    body: str
    to: User | None = None


@dataclass(frozen=True)
class Built:
    id: int
    message_ids: list[int]


async def finished_conversation(
    ctx: AppContext,
    owner: User,
    said: Sequence[Said],
    *,
    kind: ConversationKind = ConversationKind.support,
    assignee: User | None = None,
    members: Sequence[User] = (),
    topic_id: int | None = None,
    channel: str = "web",
    user_rating: Rating | None = None,
    status: ConversationStatus = ConversationStatus.done,
    ended_at: datetime | None = None,
) -> Built:
    """A conversation that has ended, with ``said`` in order. In a session ``owner`` is the
    instructor and ``members`` the participants."""
    async with ctx.log.transaction() as session:
        conversation = Conversation(
            kind=kind,
            status=ConversationStatus.active,
            owner_id=owner.id,
            assignee_id=assignee.id if assignee else None,
            topic_id=topic_id,
            channel=channel,
            created_at=utcnow(),
        )
        session.add(conversation)
        await session.flush()
        if kind is ConversationKind.session:
            session.add(
                Participant(conversation_id=conversation.id, user_id=owner.id, role="instructor")
            )
            session.add_all(
                Participant(conversation_id=conversation.id, user_id=m.id, role="member")
                for m in members
            )
        ids = []
        for line in said:
            message = await append_message(
                ctx.log,
                session,
                line.sender,
                conversation.id,
                line.body,
                recipient_id=line.to.id if line.to else None,
            )
            ids.append(message.id)
        conversation.status = status
        conversation.ended_at = ended_at or utcnow()
        conversation.user_rating = user_rating
    return Built(conversation.id, ids)


async def delete_message(ctx: AppContext, message_id: int, by: User) -> None:
    """What a moderator's soft delete leaves behind."""
    async with ctx.db.write() as session:
        await session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(deleted_at=utcnow(), deleted_by_id=by.id)
        )
