"""The support workflow (S1-S6): open on a topic, queue, claim, chat, end, rate.

Status moves one way: pending -> active -> done (-> annotated, by an annotator). A claimed
conversation that the moderator has not answered within ``claim_timeout`` goes back to pending.
Every change is an event in the conversation, and the moderators' queue is republished as one
snapshot to all of them. Listeners (the channel relay, which tells a WhatsApp or Messenger user
that a moderator joined or that the conversation ended) are called after the commit; their
failures are logged, never raised.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatforge.errors import Conflict, Forbidden, Invalid, NotFound
from chatforge.realtime.envelope import QUEUE_TOPIC, Envelope, dumps, user_topic
from chatforge.services import audit
from chatforge.services.access import OPEN, load_readable
from chatforge.services.conversations import ConversationView, load_view, open_support
from chatforge.services.eventlog import EventLog
from chatforge.services.policy import require_role
from chatforge.services.presence import Presence
from chatforge.store.bulk import unindexed
from chatforge.store.database import Database
from chatforge.store.models import (
    Conversation,
    ConversationKind,
    ConversationStatus,
    Participant,
    Rating,
    Role,
    Topic,
    User,
)
from chatforge.store.types import utcnow

COMMENT_MAX = 1000
DEFAULT_WAIT_SECONDS = 120.0
log = logging.getLogger(__name__)

# Called with the conversation as it is after the change and the change's reason
# (``claimed``, ``auto_assigned``, ``transferred``, ``ended``).
SupportListener = Callable[[ConversationView, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class OpenResult:
    conversation: ConversationView
    created: bool


@dataclass(frozen=True, slots=True)
class SupportStatus:
    moderators_online: int
    pending: int


class SupportService:
    def __init__(
        self,
        db: Database,
        log: EventLog,
        presence: Presence,
        *,
        max_active_per_moderator: int,
        claim_timeout: timedelta,
        auto_assign: bool = False,
    ) -> None:
        self.db = db
        self.log = log
        self.presence = presence
        self.max_active = max_active_per_moderator
        self.claim_timeout = claim_timeout
        self.auto_assign = auto_assign
        self.listeners: list[SupportListener] = []

    def listen(self, listener: SupportListener) -> None:
        """Call ``listener`` after each claim, transfer and end commits."""
        self.listeners.append(listener)

    async def _changed(self, conversation_id: int, reason: str) -> ConversationView:
        view = await self._view(conversation_id)
        for listener in self.listeners:
            try:
                await listener(view, reason)
            except Exception:
                log.exception("support listener failed for conversation %s", conversation_id)
        return view

    async def open(self, actor: User, topic_id: int, *, channel: str = "web") -> OpenResult:
        """Start a pending conversation on an active topic (S1).

        ``channel`` is where the user talks: ``web``, or the channel a bot handed them over
        from (B4), shown to moderators. A user has at most one open conversation: asking again
        returns the open one. Raises ``NotFound`` for an unknown or inactive topic.
        """
        async with self.log.transaction() as session:
            existing = await session.scalar(
                select(Conversation.id).where(
                    # Through the owners' index, not every open support conversation.
                    unindexed(Conversation.kind) == ConversationKind.support,
                    Conversation.owner_id == actor.id,
                    unindexed(Conversation.status).in_(OPEN),
                )
            )
            if existing is not None:
                return OpenResult(await load_view(session, existing), created=False)
            topic = await session.get(Topic, topic_id)
            if topic is None or not topic.is_active:
                raise NotFound(f"No active topic {topic_id}.", code="topic_not_found")
            conversation = Conversation(
                kind=ConversationKind.support,
                status=ConversationStatus.pending,
                title=topic.name,
                topic_id=topic.id,
                owner_id=actor.id,
                channel=channel,
                created_at=utcnow(),
            )
            session.add(conversation)
            await session.flush()
            session.add(
                Participant(conversation_id=conversation.id, user_id=actor.id, role="owner")
            )
            await self.log.append(
                session,
                conversation.id,
                "conversation_updated",
                actor_id=actor.id,
                payload={"status": "pending", "topic": topic.name, "reason": "opened"},
            )
        if self.auto_assign:
            await self._auto_assign(conversation.id)
        await self.publish_queue()
        return OpenResult(await self._view(conversation.id), created=True)

    async def claim(self, actor: User, conversation_id: int) -> ConversationView:
        """A moderator takes a pending conversation (S3); exactly one of racing claims wins."""
        require_role(actor, Role.moderator)
        async with self.log.transaction() as session:
            await self._claim(session, actor, conversation_id, reason="claimed")
        await self.publish_queue()
        return await self._changed(conversation_id, "claimed")

    async def _claim(
        self, session: AsyncSession, moderator: User, conversation_id: int, *, reason: str
    ) -> None:
        # Lock the moderator's row (PostgreSQL) so two claims of theirs count one another.
        await session.scalar(select(User.id).where(User.id == moderator.id).with_for_update())
        held = await _active_held_by(session, moderator.id)
        if held >= self.max_active:
            raise Conflict(
                f"You already hold {held} active conversation(s); end one first.",
                code="too_many_active",
            )
        now = utcnow()
        # The status condition makes the claim atomic: a second claimer updates no row.
        claimed = await session.execute(
            update(Conversation)
            .where(
                Conversation.id == conversation_id,
                Conversation.kind == ConversationKind.support,
                Conversation.status == ConversationStatus.pending,
            )
            .values(status=ConversationStatus.active, assignee_id=moderator.id, claimed_at=now)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            if await session.get(Conversation, conversation_id) is None:
                raise NotFound(f"No conversation {conversation_id}.", code="conversation_not_found")
            raise Conflict("Someone else claimed this conversation.", code="already_claimed")
        await self._join(session, conversation_id, moderator.id, "moderator")
        await self.log.append(
            session,
            conversation_id,
            "conversation_updated",
            actor_id=moderator.id,
            payload={
                "status": "active",
                "assignee_id": moderator.id,
                "assignee_name": moderator.display_name,
                "reason": reason,
            },
        )

    @staticmethod
    async def _join(session: AsyncSession, conversation_id: int, user_id: int, role: str) -> None:
        participant = await session.get(Participant, (conversation_id, user_id))
        if participant is None:
            session.add(Participant(conversation_id=conversation_id, user_id=user_id, role=role))
        else:
            participant.left_at = None

    async def end(self, actor: User, conversation_id: int) -> ConversationView:
        """Either side ends the conversation (S5): status done."""
        async with self.log.transaction() as session:
            conversation = await load_readable(session, actor, conversation_id)
            if conversation.kind is not ConversationKind.support:
                raise Invalid("Only support conversations end this way.", code="wrong_kind")
            if actor.role is not Role.admin and actor.id not in (
                conversation.owner_id,
                conversation.assignee_id,
            ):
                raise Forbidden(
                    "Only the user or their moderator can end it.", code="not_a_participant"
                )
            if conversation.status not in OPEN:
                raise Conflict("This conversation has ended already.", code="conversation_closed")
            conversation.status = ConversationStatus.done
            conversation.ended_at = utcnow()
            await self.log.append(
                session,
                conversation_id,
                "conversation_updated",
                actor_id=actor.id,
                payload={"status": "done", "ended_by": actor.id, "reason": "ended"},
            )
        await self.publish_queue()
        return await self._changed(conversation_id, "ended")

    async def rate(
        self, actor: User, conversation_id: int, rating: Rating, comment: str | None = None
    ) -> ConversationView:
        """The user rates their finished conversation (S5); rating again replaces it."""
        text = (comment or "").strip() or None
        if text is not None and len(text) > COMMENT_MAX:
            raise Invalid(f"The comment can be at most {COMMENT_MAX} characters.", code="too_long")
        async with self.log.transaction() as session:
            conversation = await session.get(Conversation, conversation_id)
            if conversation is None:
                raise NotFound(f"No conversation {conversation_id}.", code="conversation_not_found")
            if conversation.owner_id != actor.id:
                raise Forbidden("Only the user who asked can rate it.", code="not_owner")
            if conversation.status in OPEN:
                raise Conflict("Rate the conversation after it has ended.", code="not_finished")
            conversation.user_rating = rating
            conversation.user_rating_comment = text
            await self.log.append(
                session,
                conversation_id,
                "conversation_updated",
                actor_id=actor.id,
                payload={
                    "status": conversation.status.value,
                    "user_rating": rating.value,
                    "reason": "rated",
                },
            )
        return await self._view(conversation_id)

    async def transfer(
        self, actor: User, conversation_id: int, to_user_id: int
    ) -> ConversationView:
        """Hand an active conversation to another moderator (S6)."""
        require_role(actor, Role.moderator)
        async with self.log.transaction() as session:
            conversation = await session.get(Conversation, conversation_id)
            if conversation is None or conversation.kind is not ConversationKind.support:
                raise NotFound(f"No conversation {conversation_id}.", code="conversation_not_found")
            if conversation.status is not ConversationStatus.active:
                raise Conflict("Only active conversations can be transferred.", code="not_active")
            if actor.role is not Role.admin and conversation.assignee_id != actor.id:
                raise Forbidden("Only its moderator can transfer it.", code="not_assignee")
            target = await session.get(User, to_user_id)
            if (
                target is None
                or not target.is_active
                or target.role not in (Role.moderator, Role.admin)
            ):
                raise Invalid("Transfer to an active moderator.", code="invalid_moderator")
            if target.id == conversation.assignee_id:
                raise Conflict("They hold it already.", code="same_moderator")
            if await _active_held_by(session, target.id) >= self.max_active:
                raise Conflict(
                    f"{target.display_name} holds the most they can.", code="too_many_active"
                )
            previous = conversation.assignee_id
            conversation.assignee_id = target.id
            if previous is not None:
                old = await session.get(Participant, (conversation_id, previous))
                if old is not None:
                    old.left_at = utcnow()
            await self._join(session, conversation_id, target.id, "moderator")
            await self.log.append(
                session,
                conversation_id,
                "conversation_updated",
                actor_id=actor.id,
                payload={
                    "status": "active",
                    "assignee_id": target.id,
                    "assignee_name": target.display_name,
                    "reason": "transferred",
                },
            )
            audit.record(
                session,
                actor_id=actor.id,
                action="conversation.transfer",
                target_type="conversation",
                target_id=conversation_id,
                from_user=previous,
                to_user=target.id,
            )
        await self.publish_queue()
        return await self._changed(conversation_id, "transferred")

    async def release_unanswered(self, now: datetime | None = None) -> list[int]:
        """Return claimed but unanswered conversations to the queue after ``claim_timeout``."""
        deadline = (now or utcnow()) - self.claim_timeout
        released: list[int] = []
        async with self.log.transaction() as session:
            stale = list(
                await session.scalars(
                    select(Conversation).where(
                        Conversation.kind == ConversationKind.support,
                        Conversation.status == ConversationStatus.active,
                        Conversation.first_response_at.is_(None),
                        Conversation.claimed_at < deadline,
                    )
                )
            )
            for conversation in stale:
                previous = conversation.assignee_id
                conversation.status = ConversationStatus.pending
                conversation.assignee_id = None
                conversation.claimed_at = None
                if previous is not None:
                    old = await session.get(Participant, (conversation.id, previous))
                    if old is not None:
                        old.left_at = utcnow()
                await self.log.append(
                    session,
                    conversation.id,
                    "conversation_updated",
                    actor_id=None,
                    payload={"status": "pending", "assignee_id": None, "reason": "claim_timeout"},
                )
                released.append(conversation.id)
        if released:
            await self.publish_queue()
        return released

    async def status(self) -> SupportStatus:
        """What a user sees before starting: moderators online and people waiting."""
        async with self.db.read() as session:
            pending = await session.scalar(
                select(func.count()).where(
                    Conversation.kind == ConversationKind.support,
                    Conversation.status == ConversationStatus.pending,
                )
            )
        return SupportStatus(len(await self.presence.online_moderators()), pending or 0)

    async def publish_queue(self) -> None:
        """Send moderators the queue, and each waiting user their place in it (S2, S6)."""
        async with self.db.read() as session:
            conversations = await open_support(session)
            average_wait = await self._average_wait(session)
        online = len(await self.presence.online_moderators())
        pending = [c for c in conversations if c.status is ConversationStatus.pending]
        snapshot = {
            "type": "queue_updated",
            "pending": [c.summary() for c in pending],
            "active": [c.summary() for c in conversations if c.status is ConversationStatus.active],
            "moderators_online": online,
        }
        envelopes = [Envelope(topic=QUEUE_TOPIC, frame=dumps(snapshot))]
        for position, conversation in enumerate(pending, start=1):
            estimate = position * average_wait / max(1, online)
            envelopes.append(
                Envelope(
                    topic=user_topic(conversation.owner_id),
                    frame=dumps(
                        {
                            "type": "queue_position",
                            "conversation_id": conversation.id,
                            "position": position,
                            "estimated_wait_seconds": round(estimate),
                            "moderators_online": online,
                        }
                    ),
                )
            )
        await self.log.published(envelopes)

    async def queue_position(self, actor: User, conversation_id: int) -> tuple[int, int] | None:
        """(position, estimated wait in seconds) of the actor's pending conversation.

        ``Forbidden`` for anyone but the person waiting; None once it is no longer pending.
        """
        async with self.db.read() as session:
            owner = await session.scalar(
                select(Conversation.owner_id).where(Conversation.id == conversation_id)
            )
            if owner is None:
                raise NotFound(f"No conversation {conversation_id}.", code="conversation_not_found")
            if owner != actor.id:
                raise Forbidden("Only the person waiting sees their place.", code="not_owner")
            conversations = await open_support(session)
            average_wait = await self._average_wait(session)
        online = len(await self.presence.online_moderators())
        pending = [c for c in conversations if c.status is ConversationStatus.pending]
        for position, conversation in enumerate(pending, start=1):
            if conversation.id == conversation_id:
                return position, round(position * average_wait / max(1, online))
        return None

    @staticmethod
    async def _average_wait(session: AsyncSession) -> float:
        """Mean seconds from opening to claim over the last 20 claimed conversations."""
        rows = (
            await session.execute(
                select(Conversation.created_at, Conversation.claimed_at)
                .where(Conversation.claimed_at.is_not(None))
                .order_by(Conversation.claimed_at.desc())
                .limit(20)
            )
        ).all()
        waits = [(claimed - created).total_seconds() for created, claimed in rows if claimed]
        return sum(waits) / len(waits) if waits else DEFAULT_WAIT_SECONDS

    async def _auto_assign(self, conversation_id: int) -> None:
        """Hand a new conversation to the least busy online moderator, if one has room."""
        online = await self.presence.online_moderators()
        if not online:
            return
        async with self.db.read() as session:
            rows = (
                await session.execute(
                    select(User, func.count(Conversation.id))
                    .outerjoin(
                        Conversation,
                        (Conversation.assignee_id == User.id)
                        & (Conversation.status == ConversationStatus.active),
                    )
                    .where(
                        User.id.in_(online), User.is_active.is_(True), User.role == Role.moderator
                    )
                    .group_by(User.id)
                    .order_by(func.count(Conversation.id), User.id)
                )
            ).all()
        for moderator, held in rows:
            if held >= self.max_active:
                continue
            try:
                async with self.log.transaction() as session:
                    await self._claim(session, moderator, conversation_id, reason="auto_assigned")
                await self._changed(conversation_id, "auto_assigned")
                return
            except Conflict:
                continue

    async def _view(self, conversation_id: int) -> ConversationView:
        async with self.db.read() as session:
            return await load_view(session, conversation_id)


async def _active_held_by(session: AsyncSession, moderator_id: int) -> int:
    """How many active support conversations a moderator holds."""
    held = await session.scalar(
        select(func.count()).where(
            Conversation.assignee_id == moderator_id,
            Conversation.status == ConversationStatus.active,
        )
    )
    return held or 0
