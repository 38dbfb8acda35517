"""Running bots against the database (B1, B3, B7).

The runtime loads a user's snapshot, lets the pure machine take a step, and writes back the new
state, the stored values, the idle deadline, one interaction row and the transcript, all in the
caller's transaction (so a channel claims the inbound message id in that same transaction, and
a webhook costs one transaction). Work that must only happen once the step has committed
(hand-off, outbound delivery) is done by :meth:`BotRuntime.after_commit`.

Transactions come from ``transaction`` (by default ``Database.write``); chatforge passes the
event log's, which publishes the transcript's events to live viewers after the commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chatforge.bots import machine
from chatforge.bots.machine import BotDefinition, Outcome, Snapshot
from chatforge.bots.registry import BotRegistry
from chatforge.bots.seams import (
    HandoffDesk,
    HandoffTicket,
    NoHandoffDesk,
    NoTranscript,
    Outbox,
    Transcript,
)
from chatforge.store.bot_models import BotInteraction, BotState
from chatforge.store.database import Database
from chatforge.store.models import User
from chatforge.store.types import utcnow

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Transaction = Callable[[], AbstractAsyncContextManager[AsyncSession]]
SWEEP_BATCH = 100


@dataclass(slots=True)
class BotReply:
    """What one inbound message produced: the texts to send back, in order."""

    bot: str
    user_id: int
    channel: str
    inbound: str
    outcome: Outcome

    @property
    def replies(self) -> list[str]:
        return self.outcome.replies


class BotRuntime:
    def __init__(
        self,
        db: Database,
        registry: BotRegistry,
        *,
        clock: Clock = utcnow,
        transcript: Transcript | None = None,
        handoff: HandoffDesk | None = None,
        outbox: Outbox | None = None,
        transaction: Transaction | None = None,
    ) -> None:
        self.db = db
        self._begin: Transaction = transaction or db.write
        self.registry = registry
        self.clock = clock
        self.transcript: Transcript = transcript or NoTranscript()
        self.handoff: HandoffDesk = handoff or NoHandoffDesk()
        self.outbox = outbox

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write transaction for a bot step (events are published after it commits)."""
        async with self._begin() as session:
            yield session

    async def _snapshot(
        self, session: AsyncSession, bot: BotDefinition, user: User, channel: str, now: datetime
    ) -> tuple[BotState | None, Snapshot]:
        row = await session.scalar(
            select(BotState)
            .where(BotState.bot == bot.name, BotState.user_id == user.id)
            .with_for_update()
        )
        counted: tuple[datetime, ...] = ()
        if bot.quota is not None:
            times = await session.scalars(
                select(BotInteraction.created_at).where(
                    BotInteraction.bot == bot.name,
                    BotInteraction.user_id == user.id,
                    BotInteraction.counted.is_(True),
                    BotInteraction.created_at > bot.quota.since(now),
                )
            )
            counted = tuple(times)
        snapshot = Snapshot(
            user_id=user.id,
            display_name=user.display_name,
            channel=channel,
            state=row.state if row else None,
            values=dict(row.values) if row else {},
            idle_deadline=row.idle_deadline if row else None,
            counted_at=counted,
        )
        return row, snapshot

    @staticmethod
    def _save(
        session: AsyncSession,
        row: BotState | None,
        bot: BotDefinition,
        user_id: int,
        channel: str,
        outcome: Outcome,
        now: datetime,
    ) -> None:
        if row is None:
            row = BotState(bot=bot.name, user_id=user_id)
            session.add(row)
        row.state = outcome.state
        row.values = dict(outcome.values)
        row.channel = channel
        row.idle_deadline = outcome.idle_deadline
        row.updated_at = now

    async def handle(
        self, session: AsyncSession, bot: BotDefinition, user: User, channel: str, text: str
    ) -> BotReply:
        """Run one step of ``bot`` for ``user`` inside the caller's write transaction.

        A handler's exception is logged here and turned into the bot's apology; the user's
        state and stored values stay as they were, and the interaction is not counted.
        """
        now = self.clock()
        row, snapshot = await self._snapshot(session, bot, user, channel, now)
        outcome = await machine.step(bot, snapshot, text, now)
        if outcome.error is not None:
            log.error(
                "bot %s failed for user %s in state %s",
                bot.name,
                user.id,
                snapshot.state,
                exc_info=outcome.error,
            )
        if outcome.error is None or row is not None:
            self._save(session, row, bot, user.id, channel, outcome, now)
        if outcome.interaction is not None:
            session.add(
                BotInteraction(
                    bot=bot.name,
                    user_id=user.id,
                    channel=channel,
                    keyword=outcome.interaction.keyword,
                    outcome=outcome.interaction.outcome,
                    counted=outcome.interaction.counted,
                    created_at=now,
                )
            )
        await self.transcript.record(
            session,
            bot=bot.name,
            user_id=user.id,
            channel=channel,
            inbound=text,
            replies=list(outcome.replies),
        )
        return BotReply(
            bot=bot.name, user_id=user.id, channel=channel, inbound=text, outcome=outcome
        )

    async def after_commit(self, reply: BotReply) -> None:
        """Side effects of a committed step: the hand-off.

        A hand-off's notice is appended to ``reply.replies`` so the channel sends it too.
        """
        handoff = reply.outcome.handoff
        if handoff is not None:
            ticket = HandoffTicket(
                bot=reply.bot,
                user_id=reply.user_id,
                channel=reply.channel,
                topic=handoff.topic,
                note=handoff.note,
            )
            try:
                notice = await self.handoff.open(ticket)
            except Exception:
                log.exception("hand-off for user %s failed", reply.user_id)
                notice = NoHandoffDesk.notice
            if notice:
                reply.outcome.replies.append(notice)

    async def converse(self, bot: BotDefinition, user: User, channel: str, text: str) -> BotReply:
        """One step in its own transaction, then its after-commit work (console, web)."""
        async with self.transaction() as session:
            reply = await self.handle(session, bot, user, channel, text)
        await self.after_commit(reply)
        return reply

    # -- idle timeouts (B7) -------------------------------------------------------------------

    async def fire_timeouts(self) -> int:
        """Move every user whose idle deadline has passed to the timeout's state.

        Messages the entered state sends go out through the outbox on the user's last channel.
        Returns how many timeouts fired. Deadlines live in the database, so timeouts that fell
        due while the server was down fire on the first sweep after it starts.
        """
        now = self.clock()
        async with self.db.read() as session:
            due = list(
                await session.execute(
                    select(BotState.id)
                    .where(BotState.idle_deadline.is_not(None), BotState.idle_deadline <= now)
                    .order_by(BotState.idle_deadline)
                    .limit(SWEEP_BATCH)
                )
            )
        fired = 0
        for (state_id,) in due:
            deliveries: tuple[int, str, list[str]] | None = None
            async with self.transaction() as session:
                row = await session.get(BotState, state_id, with_for_update=True)
                if row is None or row.idle_deadline is None or row.idle_deadline > now:
                    continue  # answered or handled by another process meanwhile
                bot = self.registry.find(row.bot)
                if bot is None:
                    row.idle_deadline = None
                    continue
                user = await session.get(User, row.user_id)
                snapshot = Snapshot(
                    user_id=row.user_id,
                    display_name=user.display_name if user else "",
                    channel=row.channel,
                    state=row.state,
                    values=dict(row.values),
                    idle_deadline=row.idle_deadline,
                )
                outcome = await machine.expire(bot, snapshot, now)
                if outcome is None:
                    row.idle_deadline = None
                    continue
                if outcome.error is not None:
                    log.error(
                        "idle timeout of bot %s failed for user %s",
                        bot.name,
                        row.user_id,
                        exc_info=outcome.error,
                    )
                self._save(session, row, bot, row.user_id, row.channel, outcome, now)
                fired += 1
                deliveries = (row.user_id, row.channel, outcome.replies)
            if deliveries is not None and self.outbox is not None:
                user_id, channel, texts = deliveries
                for text in texts:
                    try:
                        await self.outbox.send(user_id, channel, text)
                    except Exception:
                        log.exception("idle timeout message to user %s failed", user_id)
        return fired

    async def run_timeouts(
        self, interval: float, may_run: Callable[[], Awaitable[bool]] | None = None
    ) -> None:
        """Sweep for due idle timeouts every ``interval`` seconds until cancelled.

        ``may_run`` decides each round whether this process sweeps (one process of several).
        """
        while True:
            try:
                if may_run is None or await may_run():
                    await self.fire_timeouts()
            except Exception:
                log.exception("idle timeout sweep failed")
            await asyncio.sleep(interval)
