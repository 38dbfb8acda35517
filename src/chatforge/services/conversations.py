"""Reading conversations: lists, history and replays, filtered by what the actor may see."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from chatforge.errors import Conflict
from chatforge.services.access import FINISHED, load_readable
from chatforge.services.eventlog import envelope_of, frame_of
from chatforge.services.policy import require_role
from chatforge.services.reactions import ReactionSummary, reaction_summaries
from chatforge.store.database import Database
from chatforge.store.models import (
    Conversation,
    ConversationKind,
    ConversationStatus,
    Event,
    Message,
    Participant,
    Role,
    Topic,
    User,
)

REPLAY_CAP = 1000


class ResyncRequired(Conflict):
    """The client missed more events than a replay sends; it reloads history over REST."""

    def __init__(self, last_seq: int) -> None:
        super().__init__("Too many missed events; reload the history.", code="resync_required")
        self.last_seq = last_seq


@dataclass(frozen=True, slots=True)
class ConversationView:
    id: int
    kind: ConversationKind
    status: ConversationStatus
    title: str
    topic_id: int | None
    topic_name: str | None
    owner_id: int
    owner_name: str
    assignee_id: int | None
    assignee_name: str | None
    channel: str
    last_seq: int
    created_at: datetime
    claimed_at: datetime | None
    first_response_at: datetime | None
    ended_at: datetime | None
    user_rating: str | None
    user_rating_comment: str | None

    @property
    def seconds_to_first_response(self) -> float | None:
        if self.first_response_at is None:
            return None
        return (self.first_response_at - self.created_at).total_seconds()

    @property
    def handling_seconds(self) -> float | None:
        if self.claimed_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.claimed_at).total_seconds()

    def summary(self) -> dict[str, Any]:
        """The small form used in queue snapshots."""
        return {
            "id": self.id,
            "status": self.status.value,
            "topic": self.topic_name,
            "owner": self.owner_name,
            "assignee_id": self.assignee_id,
            "assignee": self.assignee_name,
            "channel": self.channel,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Replay:
    frames: list[str]
    last_seq: int


@dataclass(frozen=True, slots=True)
class HistoryPage:
    events: list[dict[str, Any]]
    next_after_seq: int
    last_seq: int


@dataclass(frozen=True, slots=True)
class MessageView:
    """A message as history shows it: deleted ones without their text, with reactions."""

    id: int
    conversation_id: int
    seq: int
    sender_id: int
    body: str
    recipient_id: int | None
    reply_to_id: int | None
    client_id: str | None
    created_at: datetime
    deleted_at: datetime | None
    reactions: list[ReactionSummary]

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


_owner = aliased(User)
_assignee = aliased(User)


def view_query() -> Select[Conversation, str, str, str]:
    return (
        select(Conversation, Topic.name, _owner.display_name, _assignee.display_name)
        .join(_owner, _owner.id == Conversation.owner_id)
        .outerjoin(_assignee, _assignee.id == Conversation.assignee_id)
        .outerjoin(Topic, Topic.id == Conversation.topic_id)
    )


def to_view(row: Any) -> ConversationView:
    conversation, topic_name, owner_name, assignee_name = row
    return ConversationView(
        id=conversation.id,
        kind=conversation.kind,
        status=conversation.status,
        title=conversation.title,
        topic_id=conversation.topic_id,
        topic_name=topic_name,
        owner_id=conversation.owner_id,
        owner_name=owner_name,
        assignee_id=conversation.assignee_id,
        assignee_name=assignee_name,
        channel=conversation.channel,
        last_seq=conversation.last_seq,
        created_at=conversation.created_at,
        claimed_at=conversation.claimed_at,
        first_response_at=conversation.first_response_at,
        ended_at=conversation.ended_at,
        user_rating=conversation.user_rating.value if conversation.user_rating else None,
        user_rating_comment=conversation.user_rating_comment,
    )


async def load_view(session: AsyncSession, conversation_id: int) -> ConversationView:
    row = (await session.execute(view_query().where(Conversation.id == conversation_id))).one()
    return to_view(row)


class ConversationService:
    def __init__(self, db: Database, *, replay_cap: int = REPLAY_CAP) -> None:
        self.db = db
        self.replay_cap = replay_cap

    async def get(self, actor: User, conversation_id: int) -> ConversationView:
        async with self.db.read() as session:
            await load_readable(session, actor, conversation_id)
            return await load_view(session, conversation_id)

    async def visible(
        self,
        actor: User,
        *,
        status: ConversationStatus | None = None,
        kind: ConversationKind | None = None,
        limit: int = 100,
    ) -> list[ConversationView]:
        """Conversations the actor may see, newest first."""
        query = view_query().order_by(Conversation.id.desc()).limit(limit)
        if status is not None:
            query = query.where(Conversation.status == status)
        if kind is not None:
            query = query.where(Conversation.kind == kind)
        if actor.role is Role.moderator:
            query = query.where(
                (Conversation.kind != ConversationKind.session)
                | (Conversation.owner_id == actor.id)
                | Conversation.id.in_(self._joined(actor))
            )
        elif actor.role is Role.annotator:
            query = query.where(
                Conversation.status.in_(FINISHED)
                | (Conversation.owner_id == actor.id)
                | Conversation.id.in_(self._joined(actor))
            )
        elif actor.role is Role.user:
            query = query.where(
                (Conversation.owner_id == actor.id) | Conversation.id.in_(self._joined(actor))
            )
        async with self.db.read() as session:
            return [to_view(row) for row in await session.execute(query)]

    @staticmethod
    def _joined(actor: User) -> Select[int]:
        return select(Participant.conversation_id).where(Participant.user_id == actor.id)

    async def support_queue(self, actor: User) -> list[ConversationView]:
        """Pending and active support conversations, oldest first (moderators)."""
        require_role(actor, Role.moderator)
        async with self.db.read() as session:
            return await open_support(session)

    async def finished(self, actor: User, *, limit: int = 200) -> list[ConversationView]:
        """Conversations that are done and not yet annotated, newest first (annotators)."""
        require_role(actor, Role.annotator)
        query = (
            view_query()
            .where(Conversation.status == ConversationStatus.done)
            .order_by(Conversation.ended_at.desc())
            .limit(limit)
        )
        async with self.db.read() as session:
            return [to_view(row) for row in await session.execute(query)]

    async def replay(self, actor: User, conversation_id: int, after_seq: int) -> Replay:
        """The frames ``actor`` missed after ``after_seq``; ``ResyncRequired`` past ``cap``."""
        async with self.db.read() as session:
            conversation = await load_readable(session, actor, conversation_id)
            last_seq = conversation.last_seq
            if last_seq - after_seq > self.replay_cap:
                raise ResyncRequired(last_seq)
            rows = await session.scalars(
                select(Event)
                .where(
                    Event.conversation_id == conversation_id,
                    Event.seq > after_seq,
                    Event.seq <= last_seq,
                )
                .order_by(Event.seq)
            )
            frames = [
                envelope.frame
                for envelope in map(envelope_of, rows)
                if envelope.visible_to(actor.id)
            ]
        return Replay(frames=frames, last_seq=max(last_seq, after_seq))

    async def history(
        self, actor: User, conversation_id: int, *, after_seq: int = 0, limit: int = 200
    ) -> HistoryPage:
        """A page of the events ``actor`` may see, in ``seq`` order (REST history)."""
        async with self.db.read() as session:
            conversation = await load_readable(session, actor, conversation_id)
            rows = list(
                await session.scalars(
                    select(Event)
                    .where(Event.conversation_id == conversation_id, Event.seq > after_seq)
                    .order_by(Event.seq)
                    .limit(limit)
                )
            )
            last_seq = conversation.last_seq
        scanned = rows[-1].seq if rows else max(after_seq, 0)
        events = [frame_of(row) for row in rows if row.audience is None or actor.id in row.audience]
        return HistoryPage(events=events, next_after_seq=scanned, last_seq=last_seq)

    async def messages(
        self, actor: User, conversation_id: int, *, before_id: int | None = None, limit: int = 100
    ) -> list[Message]:
        """Messages ``actor`` may see, oldest first, ``limit`` of them before ``before_id``."""
        async with self.db.read() as session:
            return await _visible_messages(session, actor, conversation_id, before_id, limit)

    async def message_views(
        self, actor: User, conversation_id: int, *, before_id: int | None = None, limit: int = 100
    ) -> list[MessageView]:
        """Like ``messages``, with reactions (counts and who), and deleted text withheld."""
        async with self.db.read() as session:
            rows = await _visible_messages(session, actor, conversation_id, before_id, limit)
            reactions = await reaction_summaries(session, (row.id for row in rows))
        return [
            MessageView(
                id=row.id,
                conversation_id=row.conversation_id,
                seq=row.seq,
                sender_id=row.sender_id,
                body="" if row.deleted_at is not None else row.body,
                recipient_id=row.recipient_id,
                reply_to_id=row.reply_to_id,
                client_id=row.client_id,
                created_at=row.created_at,
                deleted_at=row.deleted_at,
                reactions=reactions.get(row.id, []),
            )
            for row in rows
        ]


async def _visible_messages(
    session: AsyncSession, actor: User, conversation_id: int, before_id: int | None, limit: int
) -> list[Message]:
    await load_readable(session, actor, conversation_id)
    query = select(Message).where(Message.conversation_id == conversation_id)
    query = query.where(
        Message.recipient_id.is_(None)
        | (Message.recipient_id == actor.id)
        | (Message.sender_id == actor.id)
        | _instructor_clause(actor, conversation_id)
    )
    if before_id is not None:
        query = query.where(Message.id < before_id)
    rows = list(await session.scalars(query.order_by(Message.id.desc()).limit(limit)))
    rows.reverse()
    return rows


def _instructor_clause(actor: User, conversation_id: int) -> Any:
    """Instructors (and admins) of a session see its private messages."""
    if actor.role is Role.admin:
        return Message.id.is_not(None)
    return Message.conversation_id.in_(
        select(Participant.conversation_id).where(
            Participant.conversation_id == conversation_id,
            Participant.user_id == actor.id,
            Participant.role == "instructor",
        )
    )


async def open_support(session: AsyncSession) -> list[ConversationView]:
    query = (
        view_query()
        .where(
            Conversation.kind == ConversationKind.support,
            Conversation.status.in_([ConversationStatus.pending, ConversationStatus.active]),
        )
        .order_by(Conversation.created_at, Conversation.id)
    )
    return [to_view(row) for row in await session.execute(query)]
