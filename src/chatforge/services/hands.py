"""Raised hands in live session rooms (L5): raise, lower (yourself, or an instructor lowers
anyone's), acknowledge, and the queue of hands in the order they went up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chatforge.errors import Forbidden, NotFound
from chatforge.services.access import (
    check_open,
    is_instructor,
    load_session,
    load_session_as_instructor,
)
from chatforge.services.eventlog import EventLog
from chatforge.store.database import Database
from chatforge.store.models import User
from chatforge.store.session_models import RaisedHand
from chatforge.store.types import utcnow


@dataclass(frozen=True, slots=True)
class HandView:
    user_id: int
    name: str
    raised_at: datetime
    acknowledged: bool


async def list_hands(session: AsyncSession, conversation_id: int) -> list[HandView]:
    rows = await session.execute(
        select(RaisedHand, User.display_name)
        .join(User, User.id == RaisedHand.user_id)
        .where(RaisedHand.conversation_id == conversation_id)
        .order_by(RaisedHand.raised_at, RaisedHand.user_id)
    )
    return [
        HandView(hand.user_id, name, hand.raised_at, hand.acknowledged_at is not None)
        for hand, name in rows
    ]


async def drop_hand(
    log: EventLog, session: AsyncSession, conversation_id: int, owner: User, *, lowered_by: User
) -> bool:
    """Lower ``owner``'s hand in the caller's transaction; False if it was not up."""
    hand = await session.get(RaisedHand, (conversation_id, owner.id))
    if hand is None:
        return False
    await session.delete(hand)
    await log.append(
        session,
        conversation_id,
        "hand_lowered",
        actor_id=lowered_by.id,
        payload={"user_id": owner.id, "name": owner.display_name, "lowered_by": lowered_by.id},
    )
    return True


class HandService:
    def __init__(self, db: Database, log: EventLog, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.log = log
        self.clock = clock

    async def raise_hand(self, actor: User, conversation_id: int) -> HandView:
        """Raise your hand; raising it again keeps your place in the queue."""
        async with self.log.transaction() as session:
            conversation = await load_session(session, actor, conversation_id)
            check_open(conversation)
            hand = await session.get(RaisedHand, (conversation_id, actor.id))
            if hand is None:
                hand = RaisedHand(
                    conversation_id=conversation_id, user_id=actor.id, raised_at=self.clock()
                )
                session.add(hand)
                await self.log.append(
                    session,
                    conversation_id,
                    "hand_raised",
                    actor_id=actor.id,
                    payload={
                        "user_id": actor.id,
                        "name": actor.display_name,
                        "raised_at": hand.raised_at.isoformat(),
                    },
                )
            return HandView(
                actor.id, actor.display_name, hand.raised_at, hand.acknowledged_at is not None
            )

    async def lower_hand(
        self, actor: User, conversation_id: int, user_id: int | None = None
    ) -> bool:
        """Lower your hand, or (instructors) anyone's; False if it was not up.

        Raises ``Forbidden`` when a participant tries to lower someone else's hand.
        """
        async with self.log.transaction() as session:
            conversation = await load_session(session, actor, conversation_id)
            owner = actor
            if user_id is not None and user_id != actor.id:
                if not await is_instructor(session, actor, conversation):
                    raise Forbidden(
                        "Only instructors lower other people's hands.", code="not_instructor"
                    )
                found = await session.get(User, user_id)
                if found is None:
                    raise NotFound("No such person.", code="user_not_found")
                owner = found
            return await drop_hand(self.log, session, conversation_id, owner, lowered_by=actor)

    async def acknowledge(self, actor: User, conversation_id: int, user_id: int) -> HandView:
        """Mark a raised hand as seen (instructors); it stays in the queue until lowered.

        Raises ``NotFound`` when that hand is not up.
        """
        async with self.log.transaction() as session:
            await load_session_as_instructor(session, actor, conversation_id)
            hand = await session.get(RaisedHand, (conversation_id, user_id))
            owner = await session.get(User, user_id)
            if hand is None or owner is None:
                raise NotFound("That hand is not raised.", code="hand_not_raised")
            if hand.acknowledged_at is None:
                hand.acknowledged_at = self.clock()
                hand.acknowledged_by_id = actor.id
                await self.log.append(
                    session,
                    conversation_id,
                    "hand_acknowledged",
                    actor_id=actor.id,
                    payload={"user_id": user_id, "name": owner.display_name, "by": actor.id},
                )
            return HandView(user_id, owner.display_name, hand.raised_at, True)

    async def hands(self, actor: User, conversation_id: int) -> list[HandView]:
        """Hands that are up, in the order they were raised."""
        async with self.db.read() as session:
            await load_session(session, actor, conversation_id)
            return await list_hands(session, conversation_id)
