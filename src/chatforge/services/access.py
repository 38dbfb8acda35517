"""Who may read and write a conversation. One place, used by REST, WebSocket and pages."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chatforge.errors import Conflict, Forbidden, NotFound
from chatforge.store.models import (
    Conversation,
    ConversationKind,
    ConversationStatus,
    Participant,
    Role,
    User,
)

OPEN = frozenset({ConversationStatus.pending, ConversationStatus.active})
FINISHED = frozenset({ConversationStatus.done, ConversationStatus.annotated})


async def is_participant(session: AsyncSession, conversation_id: int, user_id: int) -> bool:
    found = await session.scalar(
        select(Participant.user_id).where(
            Participant.conversation_id == conversation_id,
            Participant.user_id == user_id,
            Participant.left_at.is_(None),
        )
    )
    return found is not None


async def can_read(session: AsyncSession, actor: User, conversation: Conversation) -> bool:
    if actor.role is Role.admin or actor.id in (conversation.owner_id, conversation.assignee_id):
        return True
    if conversation.kind is ConversationKind.session:
        return await is_participant(session, conversation.id, actor.id)
    # Support and bot conversations: moderators watch all of them, annotators the finished ones.
    if actor.role is Role.moderator:
        return True
    return actor.role is Role.annotator and conversation.status in FINISHED


async def load_readable(session: AsyncSession, actor: User, conversation_id: int) -> Conversation:
    """The conversation, if ``actor`` may read it; ``NotFound`` / ``Forbidden`` otherwise."""
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFound(f"No conversation {conversation_id}.", code="conversation_not_found")
    if not await can_read(session, actor, conversation):
        raise Forbidden("You may not read this conversation.", code="not_a_participant")
    return conversation


async def check_can_post(session: AsyncSession, actor: User, conversation: Conversation) -> None:
    """Raise unless ``actor`` may send a message to ``conversation`` now."""
    if conversation.kind is ConversationKind.session:
        if not (
            actor.id == conversation.owner_id
            or actor.role is Role.admin
            or await is_participant(session, conversation.id, actor.id)
        ):
            raise Forbidden("Join the session first.", code="not_a_participant")
        if conversation.status not in OPEN:
            raise Conflict("This session has ended.", code="conversation_closed")
        return
    if actor.id not in (conversation.owner_id, conversation.assignee_id):
        raise Forbidden(
            "Only the people in this conversation can write in it.", code="not_a_participant"
        )
    if conversation.status not in OPEN:
        raise Conflict("This conversation has ended.", code="conversation_closed")
