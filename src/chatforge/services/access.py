"""Who may read and write a conversation. One place, used by REST, WebSocket and pages."""

from __future__ import annotations

from typing import Protocol

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


async def load_readable(
    session: AsyncSession, actor: User, conversation_id: int, *, lock: bool = False
) -> Conversation:
    """The conversation, if ``actor`` may read it; ``NotFound`` / ``Forbidden`` otherwise.

    With ``lock``, its row stays locked until the transaction ends (FOR UPDATE on PostgreSQL;
    SQLite's writer holds the whole file), so what the caller reads next is not changed by a
    concurrent transaction that locks it too."""
    conversation = await session.get(
        Conversation, conversation_id, with_for_update=True if lock else None
    )
    if conversation is None:
        raise NotFound(f"No conversation {conversation_id}.", code="conversation_not_found")
    if not await can_read(session, actor, conversation):
        raise _cannot_read()
    return conversation


def check_can_read_session(
    actor_id: int, actor_role: Role, conversation: DirectConversation, joined: bool
) -> None:
    """``can_read`` for a session room, once it is known whether the actor is a current
    participant (``joined``); raises what ``load_readable`` raises. Pure, for batches."""
    if not (
        actor_role is Role.admin
        or actor_id in (conversation.owner_id, conversation.assignee_id)
        or joined
    ):
        raise _cannot_read()


def _cannot_read() -> Forbidden:
    return Forbidden("You may not read this conversation.", code="not_a_participant")


INSTRUCTOR = "instructor"
MEMBER = "member"


async def instructor_ids(session: AsyncSession, conversation_id: int) -> set[int]:
    """The session's instructors: its current participants with the instructor role."""
    rows = await session.scalars(
        select(Participant.user_id).where(
            Participant.conversation_id == conversation_id,
            Participant.role == INSTRUCTOR,
            Participant.left_at.is_(None),
        )
    )
    return set(rows)


def runs_session(actor_id: int, actor_role: Role, owner_id: int, member_role: str | None) -> bool:
    """Whether a user runs a session room: its creator, an admin, or a participant with the
    instructor role (``member_role``: theirs in the room, None when they are not in it).

    Pure, so the batched writer decides it from rows it loaded in bulk."""
    return actor_role is Role.admin or actor_id == owner_id or member_role == INSTRUCTOR


async def is_instructor(session: AsyncSession, actor: User, conversation: Conversation) -> bool:
    """Whether ``actor`` may run this session room: its creator, a co-instructor or an admin."""
    if runs_session(actor.id, actor.role, conversation.owner_id, None):
        return True
    role = await session.scalar(
        select(Participant.role).where(
            Participant.conversation_id == conversation.id,
            Participant.user_id == actor.id,
            Participant.left_at.is_(None),
        )
    )
    return role == INSTRUCTOR


async def load_session(
    session: AsyncSession, actor: User, conversation_id: int, *, lock: bool = False
) -> Conversation:
    """A live session ``actor`` may read; ``NotFound`` / ``Forbidden`` otherwise."""
    conversation = await load_readable(session, actor, conversation_id, lock=lock)
    if conversation.kind is not ConversationKind.session:
        raise NotFound(f"No session {conversation_id}.", code="session_not_found")
    return conversation


async def load_session_as_instructor(
    session: AsyncSession, actor: User, conversation_id: int
) -> Conversation:
    """A live session ``actor`` runs; ``Forbidden`` for its other participants."""
    conversation = await load_session(session, actor, conversation_id)
    if not await is_instructor(session, actor, conversation):
        raise Forbidden("Only the session's instructors can do this.", code="not_instructor")
    return conversation


def check_open(conversation: DirectConversation) -> None:
    if conversation.status not in OPEN:
        raise Conflict("This session has ended.", code="conversation_closed")


async def check_can_post(session: AsyncSession, actor: User, conversation: Conversation) -> None:
    """Raise unless ``actor`` may send a message to ``conversation`` now."""
    if conversation.kind is ConversationKind.session:
        joined = (
            actor.id == conversation.owner_id
            or actor.role is Role.admin
            or await is_participant(session, conversation.id, actor.id)
        )
        check_can_post_to_session(joined, conversation.status)
        return
    check_can_post_direct(actor.id, conversation)


def check_can_post_to_session(joined: bool, status: ConversationStatus) -> None:
    """The posting rule of session rooms, once it is known whether the sender is in the room
    (its creator, an admin or a current participant). Pure, like ``check_can_post_direct``."""
    if not joined:
        raise Forbidden("Join the session first.", code="not_a_participant")
    if status not in OPEN:
        raise Conflict("This session has ended.", code="conversation_closed")


class DirectConversation(Protocol):
    """What the posting rule of support and bot conversations looks at."""

    @property
    def owner_id(self) -> int: ...
    @property
    def assignee_id(self) -> int | None: ...
    @property
    def status(self) -> ConversationStatus: ...


def check_can_post_direct(actor_id: int, conversation: DirectConversation) -> None:
    """The posting rule of support and bot conversations (every kind but ``session``).

    Pure, so the batched message writer applies it to rows it loaded in bulk, and the
    one-message path to the ORM object, without the rule existing twice.
    """
    if actor_id not in (conversation.owner_id, conversation.assignee_id):
        raise Forbidden(
            "Only the people in this conversation can write in it.", code="not_a_participant"
        )
    if conversation.status not in OPEN:
        raise Conflict("This conversation has ended.", code="conversation_closed")
