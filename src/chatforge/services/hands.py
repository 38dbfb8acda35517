"""Raised hands in live session rooms (L5): raise, lower (yourself, or an instructor lowers
anyone's), acknowledge, and the queue of hands in the order they went up."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
from chatforge.services.hand_batches import (
    HandView,
    Raise,
    Raised,
    raise_hands,
    raised_payload,
)
from chatforge.services.message_writer import Unbatchable
from chatforge.store.database import Database
from chatforge.store.group_commit import GroupCommit
from chatforge.store.models import User
from chatforge.store.session_models import RaisedHand
from chatforge.store.types import utcnow


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
        # "Raise your hand if..." is a room's worth of raises at once: they share transactions.
        self.batches: GroupCommit[Raise, Raised] = GroupCommit(
            self._commit, fallback=self._raise_alone, after_commit=self._publish, name="hands"
        )

    async def close(self) -> None:
        """Store the raises already queued, refuse new ones, and stop the batch writer."""
        await self.batches.close()

    async def raise_hand(self, actor: User, conversation_id: int) -> HandView:
        """Raise your hand; raising it again keeps your place in the queue."""
        request = Raise(actor, conversation_id)
        try:
            raised = await self.batches.submit(request)
        except Unbatchable:
            raised = await self._raise_alone(request)
        return raised.view

    async def _commit(self, raises: Sequence[Raise]) -> list[Raised | Exception]:
        now = self.clock()
        return await self.db.transact(lambda statements: raise_hands(statements, raises, now))

    async def _publish(self, outcomes: Sequence[Raised | Exception]) -> None:
        await self.log.publish(
            o.envelope for o in outcomes if isinstance(o, Raised) and o.envelope is not None
        )

    async def _raise_alone(self, request: Raise) -> Raised:
        """One raise in its own transaction (what a batch leaves alone, or retries)."""
        actor, conversation_id = request.actor, request.conversation_id
        async with self.log.transaction() as session:
            conversation = await load_session(session, actor, conversation_id, lock=True)
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
                    payload=raised_payload(actor.id, actor.display_name, hand.raised_at),
                )
            view = HandView(
                actor.id, actor.display_name, hand.raised_at, hand.acknowledged_at is not None
            )
        return Raised(view, None)  # its event went out with the transaction

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
