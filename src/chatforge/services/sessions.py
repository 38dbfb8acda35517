"""Live session rooms (L1, L12 slow mode): create, join, leave, the room's current state.

A session is a ``Conversation`` of kind ``session``, active from the start. Its creator (a
moderator or admin) is its instructor; anyone logged in may join an active session from its
link, which carries nothing secret. Joining and leaving are events in the room, so every
participant's list stays current.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chatforge.errors import Conflict, Invalid, NotFound
from chatforge.services import audit
from chatforge.services.access import (
    INSTRUCTOR,
    MEMBER,
    OPEN,
    is_instructor,
    load_session,
    load_session_as_instructor,
)
from chatforge.services.conversations import ConversationView, load_view
from chatforge.services.eventlog import EventLog
from chatforge.services.hand_batches import HandView
from chatforge.services.hands import drop_hand, list_hands
from chatforge.services.join_batches import (
    Join,
    Joined,
    join_rooms,
    joined_payload,
    no_session,
    session_ended,
)
from chatforge.services.moderation import MuteView, active_mute, mute_view
from chatforge.services.policy import require_role
from chatforge.store.database import Database
from chatforge.store.group_commit import GroupCommit
from chatforge.store.models import (
    Conversation,
    ConversationKind,
    ConversationStatus,
    Participant,
    Role,
    Topic,
    User,
)
from chatforge.store.session_models import Mute, SessionRoom
from chatforge.store.types import utcnow

TITLE_MAX = 120
SLOW_MODE_MAX = 3600


@dataclass(frozen=True, slots=True)
class ParticipantView:
    user_id: int
    name: str
    role: str
    joined_at: datetime


@dataclass(frozen=True, slots=True)
class RoomView:
    conversation: ConversationView
    participants: list[ParticipantView]
    hands: list[HandView]
    slow_mode_seconds: int
    is_instructor: bool
    my_mute: MuteView | None
    mutes: list[MuteView]
    """Every mute in force, for instructors; only your own otherwise."""


class SessionService:
    def __init__(self, db: Database, log: EventLog, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.log = log
        self.clock = clock
        # A class starts with everyone opening the link at once: their joins share transactions.
        self.joins: GroupCommit[Join, Joined] = GroupCommit(
            self._commit_joins, fallback=self._enter_alone, after_commit=self._publish, name="joins"
        )

    async def close(self) -> None:
        """Store the joins already queued, refuse new ones, and stop the batch writer."""
        await self.joins.close()

    async def create(
        self, actor: User, title: str, topic_id: int | None = None
    ) -> ConversationView:
        """Open a session room with ``actor`` as its instructor (moderators and admins).

        Raises ``Forbidden`` (role), ``Invalid`` (title) and ``NotFound`` (topic).
        """
        require_role(actor, Role.moderator)
        title = title.strip()
        if not 1 <= len(title) <= TITLE_MAX:
            raise Invalid(f"A title has 1-{TITLE_MAX} characters.", code="invalid_title")
        async with self.log.transaction() as session:
            if topic_id is not None:
                topic = await session.get(Topic, topic_id)
                if topic is None or not topic.is_active:
                    raise NotFound(f"No active topic {topic_id}.", code="topic_not_found")
            now = self.clock()
            conversation = Conversation(
                kind=ConversationKind.session,
                status=ConversationStatus.active,
                title=title,
                topic_id=topic_id,
                owner_id=actor.id,
                created_at=now,
            )
            session.add(conversation)
            await session.flush()
            session.add(SessionRoom(conversation_id=conversation.id, updated_at=now))
            session.add(
                Participant(
                    conversation_id=conversation.id,
                    user_id=actor.id,
                    role=INSTRUCTOR,
                    joined_at=now,
                )
            )
            await self._joined(session, conversation.id, actor, INSTRUCTOR)
            audit.record(
                session,
                actor_id=actor.id,
                action="session_create",
                target_type="conversation",
                target_id=conversation.id,
                title=title,
            )
        return await self._view(conversation.id)

    async def join(self, actor: User, conversation_id: int) -> ConversationView:
        """Enter an active session from its link (see ``enter``); returns the conversation."""
        await self.enter(actor, conversation_id)
        return await self._view(conversation_id)

    async def enter(self, actor: User, conversation_id: int) -> None:
        """Enter an active session from its link; entering again changes nothing. Batched with
        the joins sent at the same time (``join_batches.py``).

        Raises ``NotFound`` (no such session) and ``Conflict`` (ended).
        """
        await self.joins.submit(Join(actor, conversation_id))

    async def _commit_joins(self, joins: Sequence[Join]) -> list[Joined | Exception]:
        now = self.clock()
        return await self.db.transact(lambda statements: join_rooms(statements, joins, now))

    async def _publish(self, outcomes: Sequence[Joined | Exception]) -> None:
        await self.log.publish(
            o.envelope for o in outcomes if isinstance(o, Joined) and o.envelope is not None
        )

    async def _enter_alone(self, request: Join) -> Joined:
        """One join in its own transaction (a batch that failed as a whole retries each)."""
        actor, conversation_id = request.actor, request.conversation_id
        async with self.log.transaction() as session:
            conversation = await session.get(Conversation, conversation_id, with_for_update=True)
            if conversation is None or conversation.kind is not ConversationKind.session:
                raise no_session(conversation_id)
            if conversation.status not in OPEN:
                raise session_ended()
            row = await session.get(Participant, (conversation_id, actor.id))
            role = INSTRUCTOR if actor.id == conversation.owner_id else MEMBER
            if row is None:
                session.add(
                    Participant(
                        conversation_id=conversation_id,
                        user_id=actor.id,
                        role=role,
                        joined_at=self.clock(),
                    )
                )
            elif row.left_at is None:
                return Joined(None)
            else:
                row.left_at = None
                row.joined_at = self.clock()
                role = row.role
            await self._joined(session, conversation_id, actor, role)
        return Joined(None)

    async def leave(self, actor: User, conversation_id: int) -> None:
        """Leave a session: you stop receiving it; a raised hand goes down with you.

        Raises ``NotFound`` / ``Forbidden`` if you are not in it.
        """
        async with self.log.transaction() as session:
            await load_session(session, actor, conversation_id)
            row = await session.get(Participant, (conversation_id, actor.id))
            if row is None or row.left_at is not None:
                raise Conflict("You are not in this session.", code="not_a_participant")
            row.left_at = self.clock()
            await drop_hand(self.log, session, conversation_id, actor, lowered_by=actor)
            await self.log.append(
                session,
                conversation_id,
                "user_left",
                actor_id=actor.id,
                payload={"user_id": actor.id, "name": actor.display_name},
            )

    async def room(self, actor: User, conversation_id: int) -> RoomView:
        """The room as ``actor`` sees it now: participants, hands, slow mode, mutes."""
        now = self.clock()
        async with self.db.read() as session:
            conversation = await load_session(session, actor, conversation_id)
            instructor = await is_instructor(session, actor, conversation)
            rows = await session.execute(
                select(Participant, User.display_name)
                .join(User, User.id == Participant.user_id)
                .where(
                    Participant.conversation_id == conversation_id, Participant.left_at.is_(None)
                )
                .order_by(Participant.joined_at, Participant.user_id)
            )
            participants = [
                ParticipantView(p.user_id, name, p.role, p.joined_at) for p, name in rows
            ]
            mutes: list[MuteView] = []
            if instructor:
                mutes = [
                    mute_view(m)
                    for m in await session.scalars(
                        select(Mute).where(
                            Mute.conversation_id == conversation_id,
                            Mute.until.is_(None) | (Mute.until > now),
                        )
                    )
                ]
            my_mute = await active_mute(session, conversation_id, actor.id, now)
            slow = await session.scalar(
                select(SessionRoom.slow_mode_seconds).where(
                    SessionRoom.conversation_id == conversation_id
                )
            )
            return RoomView(
                conversation=await load_view(session, conversation_id),
                participants=participants,
                hands=await list_hands(session, conversation_id),
                slow_mode_seconds=slow or 0,
                is_instructor=instructor,
                my_mute=my_mute,
                mutes=mutes if instructor else ([my_mute] if my_mute else []),
            )

    async def set_slow_mode(self, actor: User, conversation_id: int, seconds: int) -> int:
        """Set the least seconds between two messages of a participant; 0 turns it off
        (instructors). Raises ``Invalid`` (out of 0-3600) and ``Forbidden``."""
        if not 0 <= seconds <= SLOW_MODE_MAX:
            raise Invalid(f"Slow mode is 0-{SLOW_MODE_MAX} seconds.", code="invalid_slow_mode")
        async with self.log.transaction() as session:
            await load_session_as_instructor(session, actor, conversation_id)
            room = await session.get(SessionRoom, conversation_id)
            if room is None:
                room = SessionRoom(conversation_id=conversation_id)
                session.add(room)
            room.slow_mode_seconds = seconds
            room.updated_at = self.clock()
            await self.log.append(
                session,
                conversation_id,
                "slow_mode_changed",
                actor_id=actor.id,
                payload={"seconds": seconds},
            )
            audit.record(
                session,
                actor_id=actor.id,
                action="session_slow_mode",
                target_type="conversation",
                target_id=conversation_id,
                seconds=seconds,
            )
        return seconds

    async def _joined(
        self, session: AsyncSession, conversation_id: int, user: User, role: str
    ) -> None:
        await self.log.append(
            session,
            conversation_id,
            "user_joined",
            actor_id=user.id,
            payload=joined_payload(user.id, user.display_name, role),
        )

    async def _view(self, conversation_id: int) -> ConversationView:
        async with self.db.read() as session:
            return await load_view(session, conversation_id)
