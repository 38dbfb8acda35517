"""The rules every message in a live session room passes (L3, L7, L8, L9, L12 slow mode).

``MessageService.post`` calls ``admit`` inside its write transaction, before the message is
stored, and ``after_post`` once it is: mutes, slow mode and rate limits refuse a send (nothing is
stored), the private-message audience is fixed once, the text is censored, and a violation adds
a strike; the third within an hour mutes the sender automatically and tells the room.
Instructors are exempt from mutes, slow mode, rate limits and automatic mutes.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime, timedelta

from limits import RateLimitItem
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from chatforge.errors import Invalid, RateLimited
from chatforge.services import audit
from chatforge.services.access import instructor_ids, is_instructor, is_participant
from chatforge.services.eventlog import EventLog
from chatforge.services.moderation import active_mute, apply_mute, check_not_muted
from chatforge.services.profanity import ProfanityFilter
from chatforge.services.ratelimits import RateLimits
from chatforge.store.models import Conversation, Message, User
from chatforge.store.session_models import ProfanityStrike, SessionRoom
from chatforge.store.types import utcnow

STRIKES_TO_MUTE = 3
STRIKE_WINDOW = timedelta(hours=1)
AUTO_MUTE = timedelta(minutes=15)
AUTO_MUTE_REASON = "Automatic: 3 profanity strikes within an hour"


@dataclass(frozen=True, slots=True)
class Admission:
    body: str
    """What to store and show (censored)."""
    audience: frozenset[int] | None
    """Who may see the message: None for everyone in the room."""
    violated: bool
    original: str
    instructor: bool


class RoomRules:
    def __init__(
        self,
        limits: RateLimits,
        profanity: ProfanityFilter,
        *,
        message_rule: RateLimitItem,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.limits = limits
        self.profanity = profanity
        self.message_rule = message_rule
        self.clock = clock

    async def admit(
        self,
        session: AsyncSession,
        actor: User,
        conversation: Conversation,
        body: str,
        recipient_id: int | None,
        *,
        counted: bool = False,
    ) -> Admission:
        """Check a send into a session room; returns what to store and who may see it.

        Raises ``Muted`` (403), ``RateLimited`` (429: ``rate_limited`` or ``slow_mode``) and
        ``Invalid`` (``invalid_recipient``). Nothing is counted against the rate limit unless
        every other check passed, nor when it was already (``counted``: by a batch that failed
        as a whole).
        """
        now = self.clock()
        instructor = await is_instructor(session, actor, conversation)
        if not instructor:
            await check_not_muted(session, conversation.id, actor.id, now)
            await self._check_slow_mode(session, conversation.id, actor.id, now)
        audience = None
        if recipient_id is not None:
            audience = await self._private_audience(
                session, actor, conversation, recipient_id, instructor
            )
        if not (instructor or counted):
            await self.count_message(conversation.id, actor.id)
        screened = self.profanity.screen(body)
        return Admission(screened.text, audience, screened.violated, body, instructor)

    async def count_message(self, conversation_id: int, user_id: int) -> None:
        """Count a participant's message against the room's rate limit; ``RateLimited`` (and
        nothing counted) when the window is full."""
        await self.limits.consume(
            self.message_rule, "session-message", str(conversation_id), str(user_id)
        )

    async def after_post(
        self,
        log: EventLog,
        session: AsyncSession,
        actor: User,
        conversation: Conversation,
        message: Message,
        admission: Admission,
    ) -> None:
        """Record a profanity violation: a strike, an audit record, and past the limit a mute."""
        if not admission.violated:
            return
        now = self.clock()
        session.add(
            ProfanityStrike(
                conversation_id=conversation.id,
                user_id=actor.id,
                message_id=message.id,
                created_at=now,
            )
        )
        audit.record(
            session,
            actor_id=actor.id,
            action="session_profanity",
            target_type="message",
            target_id=message.id,
            conversation_id=conversation.id,
            original=admission.original,
        )
        await session.flush()
        strikes = await session.scalar(
            select(func.count()).where(
                ProfanityStrike.conversation_id == conversation.id,
                ProfanityStrike.user_id == actor.id,
                ProfanityStrike.created_at > now - STRIKE_WINDOW,
            )
        )
        if admission.instructor or (strikes or 0) < STRIKES_TO_MUTE:
            return
        current = await active_mute(session, conversation.id, actor.id, now)
        if current is not None and (current.until is None or current.until >= now + AUTO_MUTE):
            return
        await apply_mute(
            log,
            session,
            conversation.id,
            actor,
            by=None,
            until=now + AUTO_MUTE,
            reason=AUTO_MUTE_REASON,
            now=now,
        )

    async def _check_slow_mode(
        self, session: AsyncSession, conversation_id: int, user_id: int, now: datetime
    ) -> None:
        interval = await session.scalar(
            select(SessionRoom.slow_mode_seconds).where(
                SessionRoom.conversation_id == conversation_id
            )
        )
        if not interval:
            return
        last = await session.scalar(
            select(func.max(Message.created_at)).where(
                Message.conversation_id == conversation_id, Message.sender_id == user_id
            )
        )
        if last is None:
            return
        if last.tzinfo is None:  # SQLite's max() bypasses the column type
            last = last.replace(tzinfo=now.tzinfo)
        wait = interval - (now - last).total_seconds()
        if wait > 0:
            raise RateLimited(
                f"Slow mode is on: one message every {interval} s.",
                retry_after=int(wait + 0.999),
                code="slow_mode",
            )

    @staticmethod
    async def _private_audience(
        session: AsyncSession,
        actor: User,
        conversation: Conversation,
        recipient_id: int,
        actor_is_instructor: bool,
    ) -> frozenset[int]:
        return private_audience(
            actor.id,
            recipient_id,
            actor_runs_room=actor_is_instructor,
            recipient_joined=await is_participant(session, conversation.id, recipient_id),
            instructors=await instructor_ids(session, conversation.id),
        )


def private_audience(
    actor_id: int,
    recipient_id: int,
    *,
    actor_runs_room: bool,
    recipient_joined: bool,
    instructors: AbstractSet[int],
) -> frozenset[int]:
    """Who sees a private message in a session room: the two people and the room's instructors.

    Raises ``Invalid`` (``invalid_recipient``) for a message to oneself, to someone not in the
    room, or from a participant to anyone but an instructor. Fixed once, when the message is
    written: the hub then filters deliveries in memory by this set. Pure, for batches.
    """
    if recipient_id == actor_id:
        raise Invalid("A private message goes to someone else.", code="invalid_recipient")
    if not recipient_joined:
        raise Invalid("The recipient is not in this session.", code="invalid_recipient")
    if not actor_runs_room and recipient_id not in instructors:
        raise Invalid(
            "Participants can write privately only to an instructor.",
            code="invalid_recipient",
        )
    return frozenset({actor_id, recipient_id} | instructors)
