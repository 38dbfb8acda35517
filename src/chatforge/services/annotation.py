"""The annotation workbench (N1-N3, N5): the to-do list, the annotation of a conversation,
message corrections and exclusions, good / bad turn ratings, and deleting a conversation.

Annotators (and admins) see finished conversations of every kind. Private messages of a live
session stay private: an annotator sees them only in sessions they host, an admin always.
Every change is written to the audit log in the same transaction.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from chatforge.datasets.records import ASSISTANT, side
from chatforge.errors import BadQuery, Conflict, Invalid, NotFound
from chatforge.services import audit
from chatforge.services.access import FINISHED
from chatforge.services.conversations import ConversationView, load_view, to_view, view_query
from chatforge.services.messages import check_body
from chatforge.services.policy import require_role
from chatforge.services.selection import (
    RATING_RANK,
    ConversationSelection,
    conditions,
    rating_rank,
    visible_messages,
)
from chatforge.store.annotation_models import (
    Annotation,
    AnnotationLabel,
    AnnotationLabelLink,
    TurnRating,
    TurnVerdict,
)
from chatforge.store.database import Database
from chatforge.store.models import (
    Conversation,
    ConversationKind,
    ConversationStatus,
    Message,
    Participant,
    Rating,
    Role,
    Topic,
    User,
)
from chatforge.store.types import utcnow

NOTES_MAX = 4000
PER_PAGE_MAX = 100
_RATING_BY_RANK = {rank: rating for rating, rank in RATING_RANK.items()}


class Keep(enum.Enum):
    """Leave a field as it is (distinct from ``None``, which clears it)."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True, slots=True)
class ListItem:
    conversation: ConversationView
    message_count: int
    rating: Rating | None
    """The annotators' rating: the lowest any of them gave; None until annotated."""
    annotators: int


@dataclass(frozen=True, slots=True)
class ConversationPage:
    items: list[ListItem]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass(frozen=True, slots=True)
class AnnotationView:
    conversation_id: int
    annotator_id: int
    annotator_name: str
    rating: Rating
    labels: tuple[str, ...]
    notes: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AnnotatedMessage:
    id: int
    seq: int
    sender_id: int
    sender_name: str
    role: str
    body: str
    corrected_body: str | None
    excluded: bool
    deleted: bool
    private: bool
    recipient_id: int | None
    created_at: datetime
    my_verdict: TurnVerdict | None
    good: int
    bad: int


@dataclass(frozen=True, slots=True)
class ConversationDetail:
    conversation: ConversationView
    messages: list[AnnotatedMessage]
    annotations: list[AnnotationView]
    mine: AnnotationView | None


@dataclass(frozen=True, slots=True)
class MessageCorrection:
    message_id: int
    conversation_id: int
    body: str
    corrected_body: str | None
    excluded: bool


async def instructors_of(session: AsyncSession, conversation_ids: list[int]) -> dict[int, set[int]]:
    """The instructors of each of these conversations (sessions' hosts)."""
    found: dict[int, set[int]] = defaultdict(set)
    if conversation_ids:
        rows = await session.execute(
            select(Participant.conversation_id, Participant.user_id).where(
                Participant.conversation_id.in_(conversation_ids),
                Participant.role == "instructor",
            )
        )
        for conversation_id, user_id in rows:
            found[conversation_id].add(user_id)
    return found


async def sees_private(session: AsyncSession, actor: User, conversation: Conversation) -> bool:
    """Whether ``actor`` may read the private messages of ``conversation``."""
    if actor.role is Role.admin:
        return True
    if conversation.kind is not ConversationKind.session:
        return False
    if conversation.owner_id == actor.id:
        return True
    return actor.id in (await instructors_of(session, [conversation.id]))[conversation.id]


async def _finished(session: AsyncSession, conversation_id: int) -> Conversation:
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFound(f"No conversation {conversation_id}.", code="conversation_not_found")
    if conversation.status not in FINISHED:
        raise Conflict(
            "Only finished conversations can be annotated.", code="conversation_not_finished"
        )
    return conversation


async def _annotation_views(session: AsyncSession, conversation_id: int) -> list[AnnotationView]:
    rows = list(
        await session.execute(
            select(Annotation, User.display_name)
            .join(User, User.id == Annotation.annotator_id)
            .where(Annotation.conversation_id == conversation_id)
            .order_by(Annotation.id)
        )
    )
    labels: dict[int, list[str]] = defaultdict(list)
    if rows:
        links = await session.execute(
            select(AnnotationLabelLink.annotation_id, AnnotationLabel.name)
            .join(AnnotationLabel, AnnotationLabel.id == AnnotationLabelLink.label_id)
            .where(AnnotationLabelLink.annotation_id.in_([a.id for a, _ in rows]))
            .order_by(AnnotationLabel.name)
        )
        for annotation_id, name in links:
            labels[annotation_id].append(name)
    return [
        AnnotationView(
            conversation_id=annotation.conversation_id,
            annotator_id=annotation.annotator_id,
            annotator_name=name,
            rating=annotation.rating,
            labels=tuple(labels[annotation.id]),
            notes=annotation.notes,
            updated_at=annotation.updated_at,
        )
        for annotation, name in rows
    ]


class AnnotationService:
    def __init__(self, db: Database) -> None:
        self.db = db

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncSession]:
        async with self.db.read() as session:
            try:
                yield session
            except OperationalError as exc:
                # Search terms are quoted, so this should not happen; if the engine still
                # refuses a MATCH expression, that is the query's fault, not a server error.
                if "fts5" in str(exc).lower() or "match" in str(exc).lower():
                    raise BadQuery("The search could not be run.", code="bad_search") from exc
                raise

    async def browse(
        self,
        actor: User,
        selection: ConversationSelection,
        *,
        page: int = 1,
        per_page: int = 25,
    ) -> ConversationPage:
        """Finished conversations matching ``selection``, newest first, one page of them.

        Raises ``Forbidden`` unless annotator or admin, ``BadQuery`` for an unusable search.
        """
        require_role(actor, Role.annotator)
        page = max(1, min(page, 10**6))
        per_page = max(1, min(per_page, PER_PAGE_MAX))
        where = conditions(selection, actor, postgres=not self.db.is_sqlite)
        ended = func.coalesce(Conversation.ended_at, Conversation.created_at)
        query = (
            view_query()
            .where(*where)
            .order_by(ended.desc(), Conversation.id.desc())
            .offset((page - 1) * per_page)
            .limit(per_page)
        )
        async with self._reading() as session:
            total = await session.scalar(
                select(func.count()).select_from(Conversation).where(*where)
            )
            views = [to_view(row) for row in await session.execute(query)]
            ids = [view.id for view in views]
            counts = dict(
                (
                    await session.execute(
                        select(Message.conversation_id, func.count())
                        .where(
                            Message.conversation_id.in_(ids),
                            Message.deleted_at.is_(None),
                            visible_messages(actor),
                        )
                        .group_by(Message.conversation_id)
                    )
                ).all()
            )
            ratings = {
                conversation_id: (lowest, annotators)
                for conversation_id, lowest, annotators in await session.execute(
                    select(Annotation.conversation_id, func.min(rating_rank()), func.count())
                    .where(Annotation.conversation_id.in_(ids))
                    .group_by(Annotation.conversation_id)
                )
            }
        items = []
        for view in views:
            lowest, annotators = ratings.get(view.id, (None, 0))
            items.append(
                ListItem(
                    conversation=view,
                    message_count=counts.get(view.id, 0),
                    rating=_RATING_BY_RANK.get(lowest) if lowest is not None else None,
                    annotators=annotators,
                )
            )
        return ConversationPage(items=items, total=total or 0, page=page, per_page=per_page)

    async def detail(self, actor: User, conversation_id: int) -> ConversationDetail:
        """The whole conversation as ``actor`` may see it, with every annotation of it.

        Raises ``Forbidden`` (role), ``NotFound`` and ``Conflict`` (not finished).
        """
        require_role(actor, Role.annotator)
        async with self.db.read() as session:
            conversation = await _finished(session, conversation_id)
            view = await load_view(session, conversation_id)
            private = await sees_private(session, actor, conversation)
            instructors = frozenset(
                (await instructors_of(session, [conversation_id]))[conversation_id]
            )
            query = (
                select(Message, User.display_name)
                .join(User, User.id == Message.sender_id)
                .where(Message.conversation_id == conversation_id)
                .order_by(Message.seq)
            )
            if not private:
                query = query.where(Message.recipient_id.is_(None))
            rows = list(await session.execute(query))
            verdicts: dict[int, list[tuple[int, TurnVerdict]]] = defaultdict(list)
            for message_id, annotator_id, verdict in await session.execute(
                select(TurnRating.message_id, TurnRating.annotator_id, TurnRating.verdict).where(
                    TurnRating.conversation_id == conversation_id
                )
            ):
                verdicts[message_id].append((annotator_id, verdict))
            annotations = await _annotation_views(session, conversation_id)
        messages = []
        for message, sender_name in rows:
            given = verdicts[message.id]
            deleted = message.deleted_at is not None
            messages.append(
                AnnotatedMessage(
                    id=message.id,
                    seq=message.seq,
                    sender_id=message.sender_id,
                    sender_name=sender_name,
                    role=side(
                        conversation.kind.value,
                        sender_id=message.sender_id,
                        owner_id=conversation.owner_id,
                        instructors=instructors,
                    ),
                    # A moderator deleted it: it stays out of reach of annotation too.
                    body="" if deleted else message.body,
                    corrected_body=None if deleted else message.corrected_body,
                    excluded=message.excluded,
                    deleted=deleted,
                    private=message.recipient_id is not None,
                    recipient_id=message.recipient_id,
                    created_at=message.created_at,
                    my_verdict=next((v for a, v in given if a == actor.id), None),
                    good=sum(v is TurnVerdict.good for _, v in given),
                    bad=sum(v is TurnVerdict.bad for _, v in given),
                )
            )
        return ConversationDetail(
            conversation=view,
            messages=messages,
            annotations=annotations,
            mine=next((a for a in annotations if a.annotator_id == actor.id), None),
        )

    async def annotate(
        self,
        actor: User,
        conversation_id: int,
        rating: Rating,
        *,
        labels: list[str] | None = None,
        notes: str | None = None,
        topic_id: int | None = None,
    ) -> AnnotationView:
        """Save ``actor``'s annotation of a finished conversation; it becomes *annotated*.

        ``labels`` (names of active labels) and ``notes`` replace the annotator's earlier ones
        when given; ``topic_id`` reclassifies the conversation. Raises ``Forbidden``,
        ``NotFound``, ``Conflict`` (not finished) and ``Invalid`` (unknown label or topic, notes
        too long).
        """
        require_role(actor, Role.annotator)
        if notes is not None and len(notes) > NOTES_MAX:
            raise Invalid(f"Notes have at most {NOTES_MAX} characters.", code="notes_too_long")
        async with self.db.write() as session:
            conversation = await _finished(session, conversation_id)
            label_ids = None if labels is None else await _label_ids(session, labels)
            if topic_id is not None and topic_id != conversation.topic_id:
                if await session.get(Topic, topic_id) is None:
                    raise Invalid(f"No topic {topic_id}.", code="unknown_topic")
                audit.record(
                    session,
                    actor_id=actor.id,
                    action="conversation.reclassified",
                    target_type="conversation",
                    target_id=conversation_id,
                    previous_topic_id=conversation.topic_id,
                    topic_id=topic_id,
                )
                conversation.topic_id = topic_id
            annotation = await session.scalar(
                select(Annotation).where(
                    Annotation.conversation_id == conversation_id,
                    Annotation.annotator_id == actor.id,
                )
            )
            now = utcnow()
            if annotation is None:
                annotation = Annotation(
                    conversation_id=conversation_id,
                    annotator_id=actor.id,
                    rating=rating,
                    notes=notes or "",
                    created_at=now,
                    updated_at=now,
                )
                session.add(annotation)
                await session.flush()
            else:
                annotation.rating = rating
                annotation.updated_at = now
                if notes is not None:
                    annotation.notes = notes
            if label_ids is not None:
                await session.execute(
                    delete(AnnotationLabelLink).where(
                        AnnotationLabelLink.annotation_id == annotation.id
                    )
                )
                session.add_all(
                    AnnotationLabelLink(annotation_id=annotation.id, label_id=label_id)
                    for label_id in label_ids
                )
            conversation.status = ConversationStatus.annotated
            audit.record(
                session,
                actor_id=actor.id,
                action="conversation.annotated",
                target_type="conversation",
                target_id=conversation_id,
                rating=rating.value,
                labels=None if labels is None else sorted(set(labels)),
                notes=notes,
            )
            await session.flush()
            views = await _annotation_views(session, conversation_id)
        return next(view for view in views if view.annotator_id == actor.id)

    async def correct(
        self,
        actor: User,
        message_id: int,
        *,
        text: str | Keep | None = KEEP,
        excluded: bool | None = None,
    ) -> MessageCorrection:
        """Correct a message's text for training and / or exclude it from training.

        The original text is kept. ``text=None`` (or the original text) removes a correction.
        Raises ``Forbidden``, ``NotFound`` (no such message, or one ``actor`` may not see),
        ``Conflict`` (unfinished conversation, deleted message) and ``Invalid`` (bad text).
        """
        require_role(actor, Role.annotator)
        if isinstance(text, str):
            check_body(text)
        async with self.db.write() as session:
            message, conversation = await self._message(session, actor, message_id)
            if not isinstance(text, Keep):
                corrected = None if text is None or text == message.body else text
                if corrected != message.corrected_body:
                    audit.record(
                        session,
                        actor_id=actor.id,
                        action="message.corrected",
                        target_type="message",
                        target_id=message.id,
                        conversation_id=conversation.id,
                        previous=message.corrected_body,
                        text=corrected,
                    )
                    message.corrected_body = corrected
            if excluded is not None and excluded != message.excluded:
                audit.record(
                    session,
                    actor_id=actor.id,
                    action="message.excluded" if excluded else "message.included",
                    target_type="message",
                    target_id=message.id,
                    conversation_id=conversation.id,
                )
                message.excluded = excluded
        return MessageCorrection(
            message_id=message.id,
            conversation_id=message.conversation_id,
            body=message.body,
            corrected_body=message.corrected_body,
            excluded=message.excluded,
        )

    async def rate_turn(
        self, actor: User, message_id: int, verdict: TurnVerdict | None
    ) -> TurnVerdict | None:
        """Rate one assistant message good or bad (``None`` withdraws ``actor``'s rating).

        Raises ``Forbidden``, ``NotFound``, ``Conflict`` (unfinished conversation or deleted
        message) and ``Invalid`` (not an assistant turn).
        """
        require_role(actor, Role.annotator)
        async with self.db.write() as session:
            message, conversation = await self._message(session, actor, message_id)
            instructors = frozenset(
                (await instructors_of(session, [conversation.id]))[conversation.id]
            )
            role = side(
                conversation.kind.value,
                sender_id=message.sender_id,
                owner_id=conversation.owner_id,
                instructors=instructors,
            )
            if role != ASSISTANT:
                raise Invalid("Only answers can be rated good or bad.", code="not_assistant_turn")
            existing = await session.scalar(
                select(TurnRating).where(
                    TurnRating.message_id == message_id, TurnRating.annotator_id == actor.id
                )
            )
            if verdict is None:
                if existing is not None:
                    await session.delete(existing)
            elif existing is None:
                session.add(
                    TurnRating(
                        message_id=message_id,
                        conversation_id=conversation.id,
                        annotator_id=actor.id,
                        verdict=verdict,
                    )
                )
            else:
                existing.verdict = verdict
            audit.record(
                session,
                actor_id=actor.id,
                action="turn.rated",
                target_type="message",
                target_id=message_id,
                conversation_id=conversation.id,
                verdict=None if verdict is None else verdict.value,
            )
        return verdict

    async def delete(self, actor: User, conversation_id: int) -> None:
        """Delete a finished conversation with its messages and annotations (annotator, admin).

        An audit record of what was deleted stays. Raises ``Forbidden``, ``NotFound`` and
        ``Conflict`` (not finished).
        """
        require_role(actor, Role.annotator)
        async with self.db.write() as session:
            conversation = await _finished(session, conversation_id)
            messages = await session.scalar(
                select(func.count()).where(Message.conversation_id == conversation_id)
            )
            audit.record(
                session,
                actor_id=actor.id,
                action="conversation.deleted",
                target_type="conversation",
                target_id=conversation_id,
                kind=conversation.kind.value,
                status=conversation.status.value,
                topic_id=conversation.topic_id,
                owner_id=conversation.owner_id,
                messages=messages,
                created_at=conversation.created_at.isoformat(),
            )
            # Messages, events, participants, annotations and turn ratings go with it (FK
            # cascades); on SQLite the search index follows through its triggers.
            await session.execute(delete(Conversation).where(Conversation.id == conversation_id))

    async def _message(
        self, session: AsyncSession, actor: User, message_id: int
    ) -> tuple[Message, Conversation]:
        message = await session.get(Message, message_id)
        if message is None:
            raise NotFound(f"No message {message_id}.", code="message_not_found")
        conversation = await _finished(session, message.conversation_id)
        if message.recipient_id is not None and not await sees_private(
            session, actor, conversation
        ):
            # As if it did not exist: its existence is private too.
            raise NotFound(f"No message {message_id}.", code="message_not_found")
        if message.deleted_at is not None:
            raise Conflict("This message was deleted.", code="message_deleted")
        return message, conversation


async def _label_ids(session: AsyncSession, names: list[str]) -> list[int]:
    wanted = {" ".join(name.split()) for name in names}
    found = dict(
        (
            await session.execute(
                select(AnnotationLabel.name, AnnotationLabel.id).where(
                    AnnotationLabel.name.in_(wanted), AnnotationLabel.is_active.is_(True)
                )
            )
        ).all()
    )
    unknown = sorted(wanted - found.keys())
    if unknown:
        raise Invalid(f"Unknown label(s): {', '.join(unknown)}.", code="unknown_label")
    return sorted(found.values())
