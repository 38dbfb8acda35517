"""Reactions to messages in live session rooms (L4): 👍 👏 ❤️ 🔥, one of each per person per
message, toggled; with counts and who reacted for history.

A reaction to a private message is an event only its audience receives.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from limits import RateLimitItem
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from chatforge.errors import ChatforgeError, Invalid
from chatforge.realtime.envelope import Envelope
from chatforge.services.access import check_open, is_instructor, load_session
from chatforge.services.eventlog import EventLog
from chatforge.services.message_writer import Unbatchable
from chatforge.services.ratelimits import RateLimits
from chatforge.services.reaction_batches import (
    Change,
    Toggle,
    Unchanged,
    apply,
    check,
    decide,
    load_facts,
    message_deleted,
    no_message,
    reaction_payload,
    write_toggles,
)
from chatforge.store.database import Database
from chatforge.store.group_commit import GroupCommit
from chatforge.store.models import Conversation, Event, Message, User
from chatforge.store.session_models import Reaction
from chatforge.store.types import utcnow

EMOJI = ("👍", "👏", "❤️", "🔥")
# The heart without its variation selector is the same reaction.
_ALIASES = {"❤": "❤️"}


@dataclass(frozen=True, slots=True)
class Reactor:
    id: int
    name: str


@dataclass(frozen=True, slots=True)
class ReactionSummary:
    emoji: str
    count: int
    users: list[Reactor]


@dataclass(frozen=True, slots=True)
class ReactionResult:
    emoji: str
    added: bool
    """Whether the actor's reaction is on the message now."""
    count: int
    changed: bool
    seq: int | None


def check_emoji(emoji: str) -> str:
    emoji = _ALIASES.get(emoji, emoji)
    if emoji not in EMOJI:
        raise Invalid(f"Reactions are {' '.join(EMOJI)}.", code="invalid_emoji")
    return emoji


async def reaction_summaries(
    session: AsyncSession, message_ids: Iterable[int]
) -> dict[int, list[ReactionSummary]]:
    """Per message: each emoji with its count and who reacted, in the order of ``EMOJI``."""
    ids = list(message_ids)
    if not ids:
        return {}
    rows = await session.execute(
        select(Reaction.message_id, Reaction.emoji, User.id, User.display_name)
        .join(User, User.id == Reaction.user_id)
        .where(Reaction.message_id.in_(ids))
        .order_by(Reaction.message_id, Reaction.created_at, User.id)
    )
    grouped: dict[int, dict[str, list[Reactor]]] = {}
    for message_id, emoji, user_id, name in rows:
        grouped.setdefault(message_id, {}).setdefault(emoji, []).append(Reactor(user_id, name))
    return {
        message_id: [
            ReactionSummary(emoji, len(users[emoji]), users[emoji])
            for emoji in EMOJI
            if emoji in users
        ]
        for message_id, users in grouped.items()
    }


@dataclass(frozen=True, slots=True)
class _Reacted:
    """A toggle's outcome, and the event to publish once its batch committed."""

    result: ReactionResult
    envelope: Envelope | None = None


class ReactionService:
    def __init__(
        self, db: Database, log: EventLog, limits: RateLimits, *, rule: RateLimitItem
    ) -> None:
        self.db = db
        self.log = log
        self.limits = limits
        self.rule = rule
        self.batches: GroupCommit[Toggle, _Reacted] = GroupCommit(
            self._commit,
            fallback=self._set_alone,
            after_commit=self._publish,
            name="reaction-batches",
        )

    async def close(self) -> None:
        """Store the toggles already queued, refuse new ones, and stop the batch writer."""
        await self.batches.close()

    async def toggle(
        self, actor: User, conversation_id: int, message_id: int, emoji: str
    ) -> ReactionResult:
        """Add your reaction, or take it back if it is there (the WebSocket's toggle)."""
        return await self._set(actor, conversation_id, message_id, emoji, want=None)

    async def add(
        self, actor: User, conversation_id: int, message_id: int, emoji: str
    ) -> ReactionResult:
        """Put your reaction on a message; no change if it is there already."""
        return await self._set(actor, conversation_id, message_id, emoji, want=True)

    async def remove(
        self, actor: User, conversation_id: int, message_id: int, emoji: str
    ) -> ReactionResult:
        """Take your reaction back; no change if it was not there."""
        return await self._set(actor, conversation_id, message_id, emoji, want=False)

    async def _set(
        self, actor: User, conversation_id: int, message_id: int, emoji: str, *, want: bool | None
    ) -> ReactionResult:
        """Raises ``Invalid`` (emoji), ``NotFound`` (message not visible to you), ``Conflict``
        (deleted message, ended session) and ``RateLimited`` (10 a minute; not instructors).

        Toggles share batches (``reaction_batches.py``); the cases a batch leaves alone take
        the one-message path."""
        toggle = Toggle(actor, conversation_id, message_id, check_emoji(emoji), want)
        try:
            reacted = await self.batches.submit(toggle)
        except Unbatchable:
            reacted = await self._set_alone(toggle)
        return reacted.result

    async def _commit(self, toggles: Sequence[Toggle]) -> list[_Reacted | Exception]:
        """One batch: load the facts, decide each toggle in order (counting the rate limit of
        those that change something), then write the changes and commit."""
        outcomes: list[_Reacted | Exception | Change] = []
        changes: list[Change] = []
        async with self.db.steps() as steps:
            facts = await steps.run(lambda statements: load_facts(statements, toggles))
            for toggle in toggles:
                try:
                    limited = check(toggle, facts)
                    decided = decide(toggle, facts)
                    if isinstance(decided, Change) and limited:
                        await self._count(toggle.conversation_id, toggle.actor_id)
                        toggle.counted = True
                except (ChatforgeError, Unbatchable) as refused:
                    outcomes.append(refused)
                    continue
                if isinstance(decided, Unchanged):
                    outcomes.append(
                        _Reacted(
                            ReactionResult(toggle.emoji, decided.added, decided.total, False, None)
                        )
                    )
                    continue
                apply(decided, facts)
                changes.append(decided)
                outcomes.append(decided)
            if not changes:
                return [o for o in outcomes if not isinstance(o, Change)]
            now = utcnow()
            written = iter(await steps.last(lambda st: write_toggles(st, changes, now)))
        results: list[_Reacted | Exception] = []
        for outcome in outcomes:
            if isinstance(outcome, Change):
                seq, envelope = next(written)
                result = ReactionResult(
                    outcome.toggle.emoji, outcome.added, outcome.total, changed=True, seq=seq
                )
                results.append(_Reacted(result, envelope))
            else:
                results.append(outcome)
        return results

    async def _publish(self, outcomes: Sequence[_Reacted | Exception]) -> None:
        await self.log.publish(
            o.envelope for o in outcomes if isinstance(o, _Reacted) and o.envelope is not None
        )

    async def _set_alone(self, toggle: Toggle) -> _Reacted:
        """One toggle in its own transaction, with every rule (private messages too)."""
        actor, conversation_id, message_id = toggle.actor, toggle.conversation_id, toggle.message_id
        emoji, want = toggle.emoji, toggle.want
        async with self.log.transaction() as session:
            # Locked, as the batches lock it: two toggles of one reaction take turns.
            conversation = await load_session(session, actor, conversation_id, lock=True)
            check_open(conversation)
            message = await session.get(Message, message_id)
            if message is None or message.conversation_id != conversation_id:
                raise no_message(message_id)
            audience = await self._audience(session, message)
            if audience is not None and actor.id not in audience:
                raise no_message(message_id)
            if message.deleted_at is not None:
                raise message_deleted()
            existing = await session.get(Reaction, (message_id, actor.id, emoji))
            add = existing is None if want is None else want
            if add == (existing is not None):
                count = await self._count_of(session, message_id, emoji)
                return _Reacted(ReactionResult(emoji, add, count, changed=False, seq=None))
            if not toggle.counted:
                await self._limit(session, actor, conversation)
            if add:
                session.add(
                    Reaction(
                        message_id=message_id,
                        user_id=actor.id,
                        emoji=emoji,
                        conversation_id=conversation_id,
                        created_at=utcnow(),
                    )
                )
            else:
                await session.delete(existing)
            await session.flush()
            count = await self._count_of(session, message_id, emoji)
            event = await self.log.append(
                session,
                conversation_id,
                "reaction_added" if add else "reaction_removed",
                actor_id=actor.id,
                payload=reaction_payload(toggle, count),
                audience=audience,
            )
        return _Reacted(ReactionResult(emoji, add, count, changed=True, seq=event.seq))

    async def _count(self, conversation_id: int, user_id: int) -> None:
        """Count a reaction against the room's rate limit (``RateLimited`` when full)."""
        await self.limits.consume(self.rule, "session-reaction", str(conversation_id), str(user_id))

    async def _limit(self, session: AsyncSession, actor: User, conversation: Conversation) -> None:
        if not await is_instructor(session, actor, conversation):
            await self._count(conversation.id, actor.id)

    @staticmethod
    async def _audience(session: AsyncSession, message: Message) -> list[int] | None:
        if message.recipient_id is None:
            return None
        # The message's own audience, as fixed when it was sent.
        audience = await session.scalar(
            select(Event.audience).where(
                Event.conversation_id == message.conversation_id, Event.seq == message.seq
            )
        )
        return list(audience) if audience is not None else [message.sender_id, message.recipient_id]

    @staticmethod
    async def _count_of(session: AsyncSession, message_id: int, emoji: str) -> int:
        count = await session.scalar(
            select(func.count()).where(Reaction.message_id == message_id, Reaction.emoji == emoji)
        )
        return int(count or 0)
