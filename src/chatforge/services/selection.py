"""Which finished conversations an annotator is looking at (N1) or exporting (N4): the filters,
and what of a conversation an annotator may see.

The same ``ConversationSelection`` drives the to-do list, the REST list, the dataset export and the
CLI, so a filter means the same thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, CompoundSelect, Select, and_, case, func, or_, select, true

from chatforge.services.access import FINISHED
from chatforge.services.search import matching_messages, search_terms
from chatforge.store.annotation_models import Annotation
from chatforge.store.models import (
    Conversation,
    ConversationKind,
    ConversationStatus,
    Message,
    Participant,
    Rating,
    Role,
    User,
)

RATING_RANK = {Rating.poor: 0, Rating.satisfactory: 1, Rating.excellent: 2}


@dataclass(frozen=True, slots=True)
class ConversationSelection:
    """Filters over finished conversations; ``None`` means "any".

    ``rating`` and ``min_rating`` are about the annotators' rating of a conversation, which is
    the lowest rating any annotator gave it (a conversation is only as good as its harshest
    reviewer says). ``ended_from`` / ``ended_to`` are inclusive UTC dates.
    """

    topic_id: int | None = None
    status: ConversationStatus | None = None
    kind: ConversationKind | None = None
    channel: str | None = None
    user_rating: Rating | None = None
    rating: Rating | None = None
    min_rating: Rating | None = None
    ended_from: date | None = None
    ended_to: date | None = None
    q: str | None = None


def rating_rank() -> Any:
    return case(
        *((Annotation.rating == rating, rank) for rating, rank in RATING_RANK.items()),
        else_=-1,
    )


def _rated(having: ColumnElement[bool]) -> Select[int]:
    """Conversations whose annotations, taken together, satisfy ``having``."""
    return select(Annotation.conversation_id).group_by(Annotation.conversation_id).having(having)


def hosted_conversations(actor: User) -> CompoundSelect[int]:
    """The sessions ``actor`` hosts: created them, or is one of their instructors."""
    return (
        select(Participant.conversation_id)
        .where(Participant.user_id == actor.id, Participant.role == "instructor")
        .union(
            select(Conversation.id).where(
                Conversation.kind == ConversationKind.session, Conversation.owner_id == actor.id
            )
        )
    )


def visible_messages(actor: User | None) -> ColumnElement[bool]:
    """Messages an annotator may read: not private, unless they host that session or are admin.

    ``None`` (the operator at the command line) sees no private message at all.
    """
    if actor is None:
        return Message.recipient_id.is_(None)
    if actor.role is Role.admin:
        return true()
    return or_(
        Message.recipient_id.is_(None),
        Message.conversation_id.in_(hosted_conversations(actor)),
    )


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def conditions(
    selection: ConversationSelection, actor: User | None, *, postgres: bool
) -> list[ColumnElement[bool]]:
    """WHERE conditions on ``Conversation`` for ``selection`` as ``actor`` sees it.

    Raises ``BadQuery`` for a search that has no words or is too long.
    """
    where: list[ColumnElement[bool]] = [
        Conversation.status.in_(
            [selection.status] if selection.status in FINISHED else sorted(FINISHED)
        )
    ]
    if selection.topic_id is not None:
        where.append(Conversation.topic_id == selection.topic_id)
    if selection.kind is not None:
        where.append(Conversation.kind == selection.kind)
    if selection.channel:
        where.append(Conversation.channel == selection.channel)
    if selection.user_rating is not None:
        where.append(Conversation.user_rating == selection.user_rating)
    ended = func.coalesce(Conversation.ended_at, Conversation.created_at)
    if selection.ended_from is not None:
        where.append(ended >= _day_start(selection.ended_from))
    if selection.ended_to is not None:
        where.append(ended < _day_start(selection.ended_to + timedelta(days=1)))
    if selection.rating is not None:
        where.append(
            Conversation.id.in_(_rated(func.min(rating_rank()) == RATING_RANK[selection.rating]))
        )
    if selection.min_rating is not None:
        where.append(
            Conversation.id.in_(
                _rated(func.min(rating_rank()) >= RATING_RANK[selection.min_rating])
            )
        )
    if selection.q is not None and selection.q.strip():
        found = matching_messages(search_terms(selection.q), postgres=postgres).where(
            visible_messages(actor)
        )
        where.append(Conversation.id.in_(found))
    return [and_(*where)]
