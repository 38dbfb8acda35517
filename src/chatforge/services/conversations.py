"""Conversations as staff see them: the support queue and the finished ones."""

from __future__ import annotations

from sqlalchemy import select

from chatforge.services.policy import require_role
from chatforge.store.database import Database
from chatforge.store.models import (
    Conversation,
    ConversationKind,
    ConversationStatus,
    Role,
    User,
)


class ConversationService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def support_queue(self, actor: User, *, limit: int = 200) -> list[Conversation]:
        """Pending and active support conversations, oldest first (moderators)."""
        require_role(actor, Role.moderator)
        query = (
            select(Conversation)
            .where(
                Conversation.kind == ConversationKind.support,
                Conversation.status.in_([ConversationStatus.pending, ConversationStatus.active]),
            )
            .order_by(Conversation.created_at)
            .limit(limit)
        )
        async with self.db.read() as session:
            return list(await session.scalars(query))

    async def finished(self, actor: User, *, limit: int = 200) -> list[Conversation]:
        """Conversations that are done and not yet annotated, newest first (annotators)."""
        require_role(actor, Role.annotator)
        query = (
            select(Conversation)
            .where(Conversation.status == ConversationStatus.done)
            .order_by(Conversation.ended_at.desc())
            .limit(limit)
        )
        async with self.db.read() as session:
            return list(await session.scalars(query))
