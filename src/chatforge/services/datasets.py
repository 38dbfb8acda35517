"""Exporting training datasets (N4, N6), streamed from the database.

Conversations are read in batches by ascending id (keyset pagination, each batch in its own
short read transaction) and written through the format's ``Writer`` batch by batch, so an
export of any size holds one batch in memory. Private messages, deleted messages and excluded
messages are never read; corrected text replaces the original.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select

from chatforge.datasets.formats import LAYOUTS, ExportFormat, Writer
from chatforge.datasets.records import DatasetConversation, DatasetMessage, redacted, side
from chatforge.services.annotation import instructors_of
from chatforge.services.policy import require_role
from chatforge.services.selection import RATING_RANK, ConversationSelection, conditions, rating_rank
from chatforge.store.annotation_models import (
    Annotation,
    AnnotationLabel,
    AnnotationLabelLink,
    TurnRating,
    TurnVerdict,
)
from chatforge.store.database import Database
from chatforge.store.models import Conversation, Message, Role, Topic, User

BATCH_SIZE = 200
_RATING_BY_RANK = {rank: rating.value for rating, rank in RATING_RANK.items()}


@dataclass
class DatasetExport:
    """An export ready to stream: what it is, how many conversations match, and its text."""

    format: ExportFormat
    filename: str
    media_type: str
    total: int
    _service: DatasetService
    _where: list[ColumnElement[bool]]
    _categories: list[str]
    _redact: bool

    async def chunks(self, on_progress: Callable[[int], None] | None = None) -> AsyncIterator[str]:
        """The document, one batch of conversations per chunk; ``on_progress(n)`` after each."""
        writer = Writer(self.format, categories=self._categories)
        yield writer.begin()
        async for batch in self._service.batches(self._where):
            if self._redact:
                batch = [redacted(conversation) for conversation in batch]
            chunk = writer.feed(batch)
            if chunk:
                yield chunk
            if on_progress is not None:
                on_progress(len(batch))
        yield writer.end()


class DatasetService:
    def __init__(self, db: Database, *, batch_size: int = BATCH_SIZE) -> None:
        self.db = db
        self.batch_size = batch_size

    async def export(
        self,
        actor: User | None,
        fmt: ExportFormat,
        selection: ConversationSelection,
        *,
        redact_pii: bool = False,
    ) -> DatasetExport:
        """Prepare an export of the finished conversations matching ``selection``.

        ``actor`` None is the operator at the command line. Raises ``Forbidden`` unless
        annotator or admin, ``BadQuery`` for an unusable search.
        """
        if actor is not None:
            require_role(actor, Role.annotator)
        where = conditions(selection, actor, postgres=not self.db.is_sqlite)
        async with self.db.read() as session:
            total = await session.scalar(
                select(func.count()).select_from(Conversation).where(*where)
            )
            topics = select(Topic.name).order_by(Topic.name)
            if selection.topic_id is not None:
                topics = topics.where(Topic.id == selection.topic_id)
            categories = list(await session.scalars(topics))
        layout = LAYOUTS[fmt]
        return DatasetExport(
            format=fmt,
            filename=f"chatforge-{fmt.value}.{layout.extension}",
            media_type=layout.media_type,
            total=total or 0,
            _service=self,
            _where=list(where),
            _categories=categories,
            _redact=redact_pii,
        )

    async def batches(
        self, where: list[ColumnElement[bool]]
    ) -> AsyncIterator[list[DatasetConversation]]:
        """The matching conversations as dataset records, ``batch_size`` at a time, by id."""
        after = 0
        while True:
            async with self.db.read() as session:
                conversations = list(
                    await session.execute(
                        select(
                            Conversation.id,
                            Conversation.kind,
                            Conversation.owner_id,
                            Conversation.channel,
                            Conversation.created_at,
                            Conversation.ended_at,
                            Conversation.user_rating,
                            Topic.name,
                        )
                        .outerjoin(Topic, Topic.id == Conversation.topic_id)
                        .where(*where, Conversation.id > after)
                        .order_by(Conversation.id)
                        .limit(self.batch_size)
                    )
                )
                if not conversations:
                    return
                ids = [row.id for row in conversations]
                messages = await session.execute(
                    select(
                        Message.id,
                        Message.conversation_id,
                        Message.sender_id,
                        Message.body,
                        Message.corrected_body,
                        Message.created_at,
                    )
                    .where(
                        Message.conversation_id.in_(ids),
                        Message.recipient_id.is_(None),
                        Message.deleted_at.is_(None),
                        Message.excluded.is_(False),
                    )
                    .order_by(Message.conversation_id, Message.seq)
                )
                by_conversation: dict[int, list[tuple[int, int, str, str | None, datetime]]] = (
                    defaultdict(list)
                )
                for message_id, conversation_id, sender_id, body, corrected, created in messages:
                    by_conversation[conversation_id].append(
                        (message_id, sender_id, body, corrected, created)
                    )
                instructors = await instructors_of(session, ids)
                lowest: dict[int, int] = dict(
                    (
                        await session.execute(
                            select(Annotation.conversation_id, func.min(rating_rank()))
                            .where(Annotation.conversation_id.in_(ids))
                            .group_by(Annotation.conversation_id)
                        )
                    ).all()
                )
                labels: dict[int, set[str]] = defaultdict(set)
                for conversation_id, name in await session.execute(
                    select(Annotation.conversation_id, AnnotationLabel.name)
                    .join(AnnotationLabelLink, AnnotationLabelLink.annotation_id == Annotation.id)
                    .join(AnnotationLabel, AnnotationLabel.id == AnnotationLabelLink.label_id)
                    .where(Annotation.conversation_id.in_(ids))
                ):
                    labels[conversation_id].add(name)
                votes: dict[int, int] = defaultdict(int)
                for message_id, verdict in await session.execute(
                    select(TurnRating.message_id, TurnRating.verdict).where(
                        TurnRating.conversation_id.in_(ids)
                    )
                ):
                    votes[message_id] += 1 if verdict is TurnVerdict.good else -1
            batch = []
            for row in conversations:
                hosts = frozenset(instructors[row.id])
                batch.append(
                    DatasetConversation(
                        id=row.id,
                        kind=row.kind.value,
                        topic=row.name,
                        channel=row.channel,
                        created_at=row.created_at,
                        ended_at=row.ended_at,
                        user_rating=row.user_rating.value if row.user_rating else None,
                        rating=_RATING_BY_RANK.get(lowest[row.id]) if row.id in lowest else None,
                        labels=tuple(sorted(labels[row.id])),
                        messages=tuple(
                            DatasetMessage(
                                message_id=message_id,
                                role=side(
                                    row.kind.value,
                                    sender_id=sender_id,
                                    owner_id=row.owner_id,
                                    instructors=hosts,
                                ),
                                text=corrected if corrected is not None else body,
                                original=body,
                                created_at=created,
                                # The annotators' majority; a tie is no verdict.
                                verdict=None
                                if votes.get(message_id, 0) == 0
                                else votes[message_id] > 0,
                            )
                            for message_id, sender_id, body, corrected, created in by_conversation[
                                row.id
                            ]
                        ),
                    )
                )
            yield batch
            after = ids[-1]
