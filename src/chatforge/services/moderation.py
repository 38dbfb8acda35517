"""Moderation of live session rooms by their instructors (L7, L8): soft-deleting messages,
muting and unmuting people, and the mute checks the room rules apply to every send.

A mute stores when it ends (``until``, or None for good); every check compares it with the
current time, so an expired mute needs nothing to lift it. Every action is an event in the room
and a record in the audit log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chatforge.errors import Conflict, Invalid, Muted, NotFound
from chatforge.services import audit
from chatforge.services.access import (
    is_instructor,
    is_participant,
    load_session_as_instructor,
)
from chatforge.services.eventlog import EventLog
from chatforge.store.database import Database
from chatforge.store.models import Conversation, Event, Message, User
from chatforge.store.session_models import Mute
from chatforge.store.types import utcnow

REASON_MAX = 200
MUTE_MINUTES_MAX = 60 * 24 * 365


@dataclass(frozen=True, slots=True)
class MuteView:
    user_id: int
    reason: str
    until: datetime | None
    muted_by_id: int | None

    def seconds_left(self, now: datetime) -> int | None:
        if self.until is None:
            return None
        return max(1, int((self.until - now).total_seconds() + 0.999))


def mute_view(mute: Mute) -> MuteView:
    return MuteView(mute.user_id, mute.reason, mute.until, mute.muted_by_id)


async def active_mute(
    session: AsyncSession, conversation_id: int, user_id: int, now: datetime
) -> MuteView | None:
    """The user's mute in the room if it is still in force at ``now``."""
    mute = await session.get(Mute, (conversation_id, user_id))
    if mute is None or not in_force(mute.until, now):
        return None
    return mute_view(mute)


def in_force(until: datetime | None, now: datetime) -> bool:
    """Whether a mute ending at ``until`` (None: never) still holds at ``now``."""
    return until is None or until > now


def describe_mute(mute: MuteView, now: datetime) -> str:
    left = mute.seconds_left(now)
    span = "until an instructor unmutes you" if left is None else f"for {_duration(left)} more"
    reason = f" Reason: {mute.reason}" if mute.reason else ""
    return f"You are muted in this session {span}.{reason}"


async def check_not_muted(
    session: AsyncSession, conversation_id: int, user_id: int, now: datetime
) -> None:
    """Raise ``Muted`` (with the seconds left) if the user is muted in the room now."""
    mute = await active_mute(session, conversation_id, user_id, now)
    if mute is not None:
        raise Muted(describe_mute(mute, now), retry_after=mute.seconds_left(now))


async def apply_mute(
    log: EventLog,
    session: AsyncSession,
    conversation_id: int,
    target: User,
    *,
    by: User | None,
    until: datetime | None,
    reason: str,
    now: datetime,
) -> MuteView:
    """Write (or replace) a mute, its event and its audit record in the caller's transaction."""
    mute = await session.get(Mute, (conversation_id, target.id))
    if mute is None:
        mute = Mute(conversation_id=conversation_id, user_id=target.id)
        session.add(mute)
    mute.muted_by_id = by.id if by else None
    mute.reason = reason
    mute.until = until
    mute.created_at = now
    await log.append(
        session,
        conversation_id,
        "user_muted",
        actor_id=by.id if by else None,
        payload={
            "user_id": target.id,
            "name": target.display_name,
            "until": until.isoformat() if until else None,
            "reason": reason,
            "automatic": by is None,
        },
    )
    audit.record(
        session,
        actor_id=by.id if by else None,
        action="session_mute" if by else "session_auto_mute",
        target_type="user",
        target_id=target.id,
        conversation_id=conversation_id,
        until=until.isoformat() if until else None,
        reason=reason,
    )
    return mute_view(mute)


class ModerationService:
    def __init__(self, db: Database, log: EventLog, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.log = log
        self.clock = clock

    async def delete_message(self, actor: User, conversation_id: int, message_id: int) -> int:
        """Soft-delete a message (instructors); returns the ``seq`` of ``message_deleted``.

        The text stays in the database for the audit trail; the message's event is redacted so
        history, replays and exports show it as deleted. Raises ``NotFound`` (no such message),
        ``Forbidden`` (not an instructor) and ``Conflict`` (deleted already).
        """
        async with self.log.transaction() as session:
            await load_session_as_instructor(session, actor, conversation_id)
            message = await session.get(Message, message_id)
            if message is None or message.conversation_id != conversation_id:
                raise NotFound(f"No message {message_id} here.", code="message_not_found")
            if message.deleted_at is not None:
                raise Conflict("This message is deleted already.", code="already_deleted")
            message.deleted_at = self.clock()
            message.deleted_by_id = actor.id
            original = await session.scalar(
                select(Event).where(
                    Event.conversation_id == conversation_id, Event.seq == message.seq
                )
            )
            audience = original.audience if original is not None else None
            if original is not None:
                # A redaction: the one edit the log allows, so no copy of the text is served.
                original.payload = {**original.payload, "body": "", "deleted": True}
            event = await self.log.append(
                session,
                conversation_id,
                "message_deleted",
                actor_id=actor.id,
                payload={"message_id": message.id, "deleted_by": actor.id},
                # A private message's deletion is news only to those who could see it.
                audience=audience,
            )
            audit.record(
                session,
                actor_id=actor.id,
                action="session_delete_message",
                target_type="message",
                target_id=message.id,
                conversation_id=conversation_id,
                sender_id=message.sender_id,
                body=message.body,
            )
        return event.seq

    async def mute(
        self,
        actor: User,
        conversation_id: int,
        user_id: int,
        *,
        duration_minutes: int | None = None,
        reason: str = "",
    ) -> MuteView:
        """Mute a participant for ``duration_minutes`` (None: until unmuted) (instructors).

        Muting again replaces the earlier mute. Raises ``Invalid`` (duration, reason, an
        instructor as target), ``NotFound`` (not in the room) and ``Forbidden``.
        """
        if duration_minutes is not None and not 1 <= duration_minutes <= MUTE_MINUTES_MAX:
            raise Invalid(
                f"duration_minutes must be 1-{MUTE_MINUTES_MAX}, or absent for a permanent mute.",
                code="invalid_duration",
            )
        reason = reason.strip()
        if len(reason) > REASON_MAX:
            raise Invalid(f"A reason has at most {REASON_MAX} characters.", code="invalid_reason")
        now = self.clock()
        async with self.log.transaction() as session:
            conversation = await load_session_as_instructor(session, actor, conversation_id)
            target = await self._participant(session, conversation, user_id)
            if await is_instructor(session, target, conversation):
                raise Invalid("Instructors cannot be muted.", code="invalid_target")
            until = None if duration_minutes is None else now + timedelta(minutes=duration_minutes)
            return await apply_mute(
                self.log,
                session,
                conversation_id,
                target,
                by=actor,
                until=until,
                reason=reason,
                now=now,
            )

    async def unmute(self, actor: User, conversation_id: int, user_id: int) -> None:
        """Lift a participant's mute (instructors); ``NotFound`` if they are not muted now."""
        now = self.clock()
        async with self.log.transaction() as session:
            await load_session_as_instructor(session, actor, conversation_id)
            mute = await session.get(Mute, (conversation_id, user_id))
            if mute is None or (mute.until is not None and mute.until <= now):
                raise NotFound("This person is not muted.", code="not_muted")
            await session.delete(mute)
            target = await session.get(User, user_id)
            await self.log.append(
                session,
                conversation_id,
                "user_unmuted",
                actor_id=actor.id,
                payload={"user_id": user_id, "name": target.display_name if target else ""},
            )
            audit.record(
                session,
                actor_id=actor.id,
                action="session_unmute",
                target_type="user",
                target_id=user_id,
                conversation_id=conversation_id,
            )

    async def mutes(self, actor: User, conversation_id: int) -> list[MuteView]:
        """The mutes in force in the room (instructors)."""
        now = self.clock()
        async with self.db.read() as session:
            await load_session_as_instructor(session, actor, conversation_id)
            rows = await session.scalars(
                select(Mute)
                .where(
                    Mute.conversation_id == conversation_id,
                    Mute.until.is_(None) | (Mute.until > now),
                )
                .order_by(Mute.created_at)
            )
            return [mute_view(row) for row in rows]

    @staticmethod
    async def _participant(session: AsyncSession, conversation: Conversation, user_id: int) -> User:
        target = await session.get(User, user_id)
        if target is None or not await is_participant(session, conversation.id, user_id):
            raise NotFound("This person is not in the session.", code="not_a_participant")
        return target


def _duration(seconds: int) -> str:
    minutes, secs = divmod(seconds, 60)
    if minutes >= 60:
        hours, minutes = divmod(minutes, 60)
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"
