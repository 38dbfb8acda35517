"""Running bots against the database (B1, B3, B7).

The runtime loads users' snapshots, lets the pure machine take a step for each message, and
writes back the new states, the stored values, the idle deadlines, one interaction row per
message and the transcript, all in the caller's transaction (so a channel claims the inbound
message ids in that same transaction, and a batch of webhooks costs one transaction). Work that
must only happen once the step has committed (hand-off, outbound delivery) is done by
:meth:`BotRuntime.after_commit`.

Steps come in batches (:meth:`BotRuntime.handle_many`): a few bulk statements per batch instead
of several per message. Messages of one user in one batch are stepped in order, each seeing the
state, stored values and quota the previous one left, as if each had had its own transaction;
the clock is read once per batch, so they share one time.

A batch is a transaction in steps (``Database.steps``): :meth:`BotRuntime.load` reads what the
machines need in one step, :meth:`BotRuntime.step_batch` runs the machines (handlers may be
coroutines) with no database work, and :meth:`BotRuntime.store` writes the outcomes and the
transcript in a second step: on SQLite two thread hops for the whole batch. The channel gateway
runs ``load`` in the step that also claims the batch's messages. The transcript's events are
published once the transaction has committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import Select, bindparam, insert, select, update

from chatforge.bots import machine
from chatforge.bots.machine import BotDefinition, JSONValue, Outcome, Snapshot
from chatforge.bots.registry import BotRegistry
from chatforge.bots.seams import (
    Exchange,
    HandoffDesk,
    HandoffTicket,
    NoHandoffDesk,
    NoTranscript,
    Outbox,
    Person,
    Transcript,
)
from chatforge.realtime.envelope import Envelope
from chatforge.store.bot_models import BotInteraction, BotState
from chatforge.store.bulk import among, padded
from chatforge.store.database import Database
from chatforge.store.models import Base, User
from chatforge.store.types import utcnow
from chatforge.store.write_lane import Statements, Steps

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
T = TypeVar("T")
SWEEP_BATCH = 100
_STATES = Base.metadata.tables[BotState.__tablename__]
_INTERACTIONS = Base.metadata.tables[BotInteraction.__tablename__]
_NEW_STATE = insert(_STATES)
_UPDATE_STATE = update(_STATES).where(_STATES.c.id == bindparam("row_id"))
_NEW_INTERACTION = insert(_INTERACTIONS)


@cache
def _states_query(size: int) -> Select[int, int, str | None, Any, str, datetime | None]:
    """The state rows of one bot's users (locked on PostgreSQL until the batch commits)."""
    return (
        select(
            _STATES.c.id,
            _STATES.c.user_id,
            _STATES.c.state,
            _STATES.c["values"],
            _STATES.c.channel,
            _STATES.c.idle_deadline,
        )
        .where(_STATES.c.bot == bindparam("bot"), among(_STATES.c.user_id, "user", size))
        .with_for_update()
    )


@cache
def _counted_query(size: int) -> Select[int, datetime]:
    """When each of one bot's users made the counted requests still in its quota window."""
    return select(_INTERACTIONS.c.user_id, _INTERACTIONS.c.created_at).where(
        _INTERACTIONS.c.bot == bindparam("bot"),
        among(_INTERACTIONS.c.user_id, "user", size),
        _INTERACTIONS.c.counted.is_(True),
        _INTERACTIONS.c.created_at > bindparam("since", type_=_INTERACTIONS.c.created_at.type),
    )


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


@dataclass(frozen=True, slots=True)
class BotRequest:
    """One inbound message for ``bot`` from ``person`` on ``channel``."""

    bot: BotDefinition
    person: Person
    channel: str
    text: str


@dataclass(slots=True)
class _Standing:
    """One user's state with one bot while a batch is stepped: loaded, then kept current."""

    row_id: int | None
    state: str | None = None
    values: dict[str, JSONValue] = field(default_factory=dict)
    channel: str | None = None
    idle_deadline: datetime | None = None
    counted_at: tuple[datetime, ...] = ()
    # A state row exists (loaded, or to be inserted for an earlier message of the batch).
    exists: bool = False
    # The columns to write at the end of the batch, if a step changed them.
    write: dict[str, Any] | None = None


Standings = dict[tuple[str, int], _Standing]


@dataclass(slots=True)
class SteppedBatch:
    """A batch's steps as decided, before anything is written."""

    replies: list[BotReply]
    standings: Standings
    interactions: list[dict[str, Any]]
    exchanges: list[Exchange]


@dataclass(slots=True)
class BotTransaction:
    """A write transaction in steps for bot work, and the transcript's envelopes to publish
    once it has committed."""

    steps: Steps
    envelopes: list[Envelope] = field(default_factory=list)

    async def run(self, work: Callable[[Statements], T]) -> T:
        return await self.steps.run(work)

    async def last(self, work: Callable[[Statements], T]) -> T:
        """``work`` as the last step, committed with it (``Steps.last``)."""
        return await self.steps.last(work)


def _state_columns(outcome: Outcome, channel: str, now: datetime) -> dict[str, Any]:
    """The ``bot_states`` columns a step writes (also for an apology: state as it was)."""
    return {
        "state": outcome.state,
        "values": dict(outcome.values),
        "channel": channel,
        "idle_deadline": outcome.idle_deadline,
        "updated_at": now,
    }


def _changes(standing: _Standing, outcome: Outcome, channel: str) -> bool:
    """Whether a step leaves the user's state row different. Most messages to a keyword bot
    change nothing (same state, same values, no deadline): not rewriting the row saves an
    ``UPDATE`` per message, and ``updated_at`` then says when the state last changed."""
    return (
        not standing.exists
        or outcome.state != standing.state
        or outcome.values != standing.values
        or outcome.idle_deadline != standing.idle_deadline
        or channel != standing.channel
    )


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
    ) -> None:
        self.db = db
        self.registry = registry
        self.clock = clock
        self.transcript: Transcript = transcript or NoTranscript()
        self.handoff: HandoffDesk = handoff or NoHandoffDesk()
        self.outbox = outbox

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[BotTransaction]:
        """A write transaction for bot steps; the caller publishes it (``published``) once it
        has committed."""
        async with self.db.steps() as steps:
            yield BotTransaction(steps)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[BotTransaction]:
        """A write transaction for bot steps; the transcript's events go out after it commits."""
        async with self.begin() as transaction:
            yield transaction
        await self.published(transaction)

    async def published(self, transaction: BotTransaction) -> None:
        """After ``transaction`` committed: publish what its steps recorded. A failure is
        logged, not raised: handling the messages again would store them twice."""
        await self.transcript.publish(transaction.envelopes)

    def load(
        self, statements: Statements, requests: Sequence[BotRequest], now: datetime
    ) -> Standings:
        """Every (bot, user) of the batch as stored: two queries per bot, not two per message."""
        standings: Standings = {}
        users: dict[str, set[int]] = {}
        bots: dict[str, BotDefinition] = {}
        for request in requests:
            users.setdefault(request.bot.name, set()).add(request.person.id)
            bots[request.bot.name] = request.bot
        for name, user_ids in users.items():
            size, ids = padded("user", user_ids)
            rows = statements.rows(_states_query(size), {"bot": name, **ids})
            for row_id, user_id, state, values, channel, deadline in rows:
                standings[(name, user_id)] = _Standing(
                    row_id, state, dict(values or {}), channel, deadline, exists=True
                )
            quota = bots[name].quota
            counted: dict[int, list[datetime]] = {}
            if quota is not None:
                times = statements.rows(
                    _counted_query(size), {"bot": name, "since": quota.since(now), **ids}
                )
                for user_id, created_at in times:
                    counted.setdefault(user_id, []).append(created_at)
            for user_id in user_ids:
                standing = standings.setdefault((name, user_id), _Standing(None))
                standing.counted_at = tuple(counted.get(user_id, ()))
        return standings

    async def step_batch(
        self, requests: Sequence[BotRequest], standings: Standings, now: datetime
    ) -> SteppedBatch:
        """Run one step per request, in order, on the ``standings`` ``load`` read.

        A handler's exception is logged here and turned into the bot's apology; the user's
        state and stored values stay as they were, and the interaction is not counted.
        """
        replies: list[BotReply] = []
        interactions: list[dict[str, Any]] = []
        exchanges: list[Exchange] = []
        for request in requests:
            bot, person, channel = request.bot, request.person, request.channel
            standing = standings[(bot.name, person.id)]
            snapshot = Snapshot(
                user_id=person.id,
                display_name=person.display_name,
                channel=channel,
                state=standing.state,
                values=dict(standing.values),
                idle_deadline=standing.idle_deadline,
                counted_at=standing.counted_at,
            )
            outcome = await machine.step(bot, snapshot, request.text, now)
            if outcome.error is not None:
                log.error(
                    "bot %s failed for user %s in state %s",
                    bot.name,
                    person.id,
                    snapshot.state,
                    exc_info=outcome.error,
                )
            if (outcome.error is None or standing.exists) and _changes(standing, outcome, channel):
                standing.write = _state_columns(outcome, channel, now)
                standing.state = outcome.state
                standing.values = standing.write["values"]
                standing.channel = channel
                standing.idle_deadline = outcome.idle_deadline
                standing.exists = True
            if outcome.interaction is not None:
                interactions.append(
                    {
                        "bot": bot.name,
                        "user_id": person.id,
                        "channel": channel,
                        "keyword": outcome.interaction.keyword,
                        "outcome": outcome.interaction.outcome,
                        "counted": outcome.interaction.counted,
                        "created_at": now,
                    }
                )
                if outcome.interaction.counted:
                    standing.counted_at = (*standing.counted_at, now)
            exchanges.append(Exchange(bot.name, person, channel, request.text, outcome.replies))
            replies.append(BotReply(bot.name, person.id, channel, request.text, outcome))
        return SteppedBatch(replies, standings, interactions, exchanges)

    def store(self, statements: Statements, stepped: SteppedBatch) -> list[Envelope]:
        """Write a batch's outcomes (final states, interactions, transcript); returns the
        transcript's envelopes, to publish once the transaction has committed."""
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for (bot, user_id), standing in stepped.standings.items():
            if standing.write is None:
                continue
            if standing.row_id is None:
                inserts.append({"bot": bot, "user_id": user_id, **standing.write})
            else:
                updates.append({"row_id": standing.row_id, **standing.write})
        statements.run(_NEW_STATE, inserts)
        statements.run(_UPDATE_STATE, updates)
        statements.run(_NEW_INTERACTION, stepped.interactions)
        return self.transcript.record(statements, stepped.exchanges)

    async def handle_many(
        self, transaction: BotTransaction, requests: Sequence[BotRequest]
    ) -> list[BotReply]:
        """Run one step per request, in order, inside ``transaction``: ``load``, then
        ``step_batch``, then ``store``, the transaction's last step (it commits it)."""
        if not requests:
            return []
        now = self.clock()
        standings = await transaction.run(lambda statements: self.load(statements, requests, now))
        return await self.step_and_store(transaction, requests, standings, now)

    async def step_and_store(
        self,
        transaction: BotTransaction,
        requests: Sequence[BotRequest],
        standings: Standings,
        now: datetime,
    ) -> list[BotReply]:
        """The rest of a batch once ``load`` read its ``standings`` in ``transaction``: step
        the bots, then write their outcomes in its last step, which commits it."""
        stepped = await self.step_batch(requests, standings, now)
        envelopes = await transaction.last(lambda statements: self.store(statements, stepped))
        transaction.envelopes.extend(envelopes)
        return stepped.replies

    async def after_commit(self, reply: BotReply) -> str | None:
        """Side effects of a committed step: the hand-off.

        A hand-off's notice is appended to ``reply.replies`` so the channel sends it too, and
        returned (it is not in the transcript, which was written before the hand-off).
        """
        handoff = reply.outcome.handoff
        notice: str | None = None
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
        return notice or None

    async def converse(self, bot: BotDefinition, user: Person, channel: str, text: str) -> BotReply:
        """One step in its own transaction, then its after-commit work (console, web)."""
        async with self.transaction() as transaction:
            [reply] = await self.handle_many(transaction, [BotRequest(bot, user, channel, text)])
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
            async with self.db.write() as session:
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
                for column, value in _state_columns(outcome, row.channel, now).items():
                    setattr(row, column, value)
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
