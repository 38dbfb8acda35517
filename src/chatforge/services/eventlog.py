"""The per-conversation event log, and publishing its events once they are committed.

Every durable change of a conversation appends one event with the conversation's next ``seq``
inside the caller's write transaction. The events wait in the transaction's outbox and are
published to the broker only after the commit succeeded, so no client ever sees an event that
could still roll back, and a client that resumes from a ``seq`` finds everything in the database.
Committed is committed: when publishing them fails, the caller is still answered as stored (see
:meth:`EventLog.published`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, column, insert, select, table, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import ColumnClause, TableClause

from chatforge.errors import NotFound
from chatforge.realtime.broker import Broker
from chatforge.realtime.envelope import Envelope, conversation_topic, dumps
from chatforge.store.database import Database
from chatforge.store.models import Conversation, Event
from chatforge.store.types import EncodedJSON, UTCDateTime, utcnow

log = logging.getLogger(__name__)
_OUTBOX = "chatforge_outbox"


def event_frame(
    *,
    type: str,
    conversation_id: int,
    seq: int,
    actor_id: int | None,
    created_at: datetime,
    payload: dict[str, Any],
) -> dict[str, Any]:
    """The frame of an event: the same for live delivery, replay and REST history."""
    return {
        "type": type,
        "conversation_id": conversation_id,
        "seq": seq,
        "actor_id": actor_id,
        "created_at": created_at.isoformat(),
        **payload,
    }


# The events table as bulk writers insert it, the payload given as JSON text (``encoded_event``).
def _encoded_events(*extra: ColumnClause[Any]) -> TableClause:
    # A column belongs to one table clause: each statement gets its own.
    return table(
        Event.__tablename__,
        column("conversation_id", Integer),
        column("seq", Integer),
        column("type", String),
        column("actor_id", Integer),
        column("payload", EncodedJSON),
        column("created_at", UTCDateTime),
        *extra,
    )


INSERT_ENCODED_EVENT = insert(_encoded_events())
INSERT_ENCODED_PRIVATE_EVENT = insert(_encoded_events(column("audience", EncodedJSON)))
"""The rows of ``encoded_event`` with an ``audience`` (everyone's events leave it NULL)."""


_last_isoformat: tuple[datetime | None, str] = (None, "")


def _isoformat(moment: datetime) -> str:
    """``moment.isoformat()``, remembered for the last moment asked: a batch stamps all of its
    events with one ``now``, and formatting it again for each was a visible share of a
    message's cost. (One tuple, replaced whole: safe when two threads call this.)"""
    global _last_isoformat
    last, text = _last_isoformat
    if last is not moment:
        text = moment.isoformat()
        _last_isoformat = (moment, text)
    return text


def encoded_event(
    *,
    type: str,
    conversation_id: int,
    seq: int,
    actor_id: int | None,
    created_at: datetime,
    payload: dict[str, Any],
    audience: frozenset[int] | None = None,
) -> tuple[dict[str, Any], Envelope]:
    """An event's row for ``INSERT_ENCODED_EVENT`` (``INSERT_ENCODED_PRIVATE_EVENT`` with an
    ``audience``) and the envelope that publishes it.

    The payload is encoded once, for both: the frame is the text ``event_frame`` gives, with
    the payload's JSON spliced in after the fields every event has. ``type`` is one of the
    event type names (a plain identifier), so it needs no escaping.
    """
    encoded = dumps(payload)
    actor = "null" if actor_id is None else actor_id
    head = (
        f'{{"type":"{type}","conversation_id":{conversation_id},"seq":{seq},'
        f'"actor_id":{actor},"created_at":"{_isoformat(created_at)}"'
    )
    frame = f"{head},{encoded[1:]}" if payload else head + "}"
    row = {
        "conversation_id": conversation_id,
        "seq": seq,
        "type": type,
        "actor_id": actor_id,
        "payload": encoded,
        "created_at": created_at,
    }
    if audience is not None:
        row["audience"] = "[" + ",".join(str(user_id) for user_id in sorted(audience)) + "]"
    return row, Envelope(
        topic=conversation_topic(conversation_id), frame=frame, seq=seq, audience=audience
    )


def frame_of(event: Event) -> dict[str, Any]:
    return event_frame(
        type=event.type,
        conversation_id=event.conversation_id,
        seq=event.seq,
        actor_id=event.actor_id,
        created_at=event.created_at,
        payload=event.payload,
    )


def envelope_of(event: Event) -> Envelope:
    return event_envelope(frame_of(event), event.audience)


def event_envelope(frame: dict[str, Any], audience: Iterable[int] | None) -> Envelope:
    """The envelope that carries an event's ``frame`` (from ``event_frame``) to its audience."""
    return Envelope(
        topic=conversation_topic(frame["conversation_id"]),
        frame=dumps(frame),
        seq=frame["seq"],
        audience=frozenset(audience) if audience is not None else None,
    )


class EventLog:
    def __init__(self, db: Database, broker: Broker) -> None:
        self.db = db
        self.broker = broker

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write transaction whose appended events are published after it commits."""
        async with self.db.write() as session:
            yield session
        await self.published(session.info.pop(_OUTBOX, []))

    async def published(self, envelopes: Sequence[Envelope]) -> None:
        """Publish what follows a commit: the transaction's events, or signals about it.

        A failure is logged and the caller goes on: answering with an error would have the
        client repeat what is already stored (a second claim, a second bot reply). Subscribers
        find the events in the log when they resume from their last ``seq``.
        """
        try:
            await self.publish(envelopes)
        except Exception:
            log.exception("publishing %d envelopes after a commit failed", len(envelopes))

    async def publish(self, envelopes: Iterable[Envelope]) -> None:
        """Publish envelopes in order: committed events (only after their commit, in ``seq``
        order) or signals that are not logged (queue snapshots, presence, typing)."""
        for envelope in envelopes:
            await self.broker.publish(envelope)

    @staticmethod
    async def next_seq(session: AsyncSession, conversation_id: int) -> int:
        """Reserve the conversation's next ``seq`` in the caller's transaction.

        The ``UPDATE ... RETURNING`` takes the conversation row's write lock, so concurrent
        writers of one conversation get consecutive numbers and commit in ``seq`` order.
        """
        seq = await session.scalar(
            update(Conversation)
            .where(Conversation.id == conversation_id)
            .values(last_seq=Conversation.last_seq + 1)
            .returning(Conversation.last_seq)
        )
        if seq is None:
            raise NotFound(f"No conversation {conversation_id}.", code="conversation_not_found")
        return int(seq)

    @staticmethod
    def add(
        session: AsyncSession,
        conversation_id: int,
        seq: int,
        type: str,
        *,
        actor_id: int | None,
        payload: dict[str, Any],
        audience: Iterable[int] | None = None,
    ) -> Event:
        """Add the event numbered ``seq`` (from ``next_seq``) and queue it for publishing."""
        event = Event(
            conversation_id=conversation_id,
            seq=seq,
            type=type,
            actor_id=actor_id,
            audience=sorted(set(audience)) if audience is not None else None,
            payload=payload,
            created_at=utcnow(),
        )
        session.add(event)
        session.info.setdefault(_OUTBOX, []).append(envelope_of(event))
        return event

    @staticmethod
    async def add_encoded(
        session: AsyncSession, events: Sequence[tuple[dict[str, Any], Envelope]]
    ) -> None:
        """Insert events from ``encoded_event`` (numbered by the caller) with one statement,
        and queue them for publishing: for writers of many events at once."""
        if events:
            await session.execute(INSERT_ENCODED_EVENT, [row for row, _ in events])
            session.info.setdefault(_OUTBOX, []).extend(envelope for _, envelope in events)

    async def append(
        self,
        session: AsyncSession,
        conversation_id: int,
        type: str,
        *,
        actor_id: int | None,
        payload: dict[str, Any],
        audience: Iterable[int] | None = None,
    ) -> Event:
        """Append an event with the conversation's next ``seq`` to the caller's transaction."""
        seq = await self.next_seq(session, conversation_id)
        return self.add(
            session,
            conversation_id,
            seq,
            type,
            actor_id=actor_id,
            payload=payload,
            audience=audience,
        )


class EventHistory:
    """Reads of the event log for the hub (gap filling) and for replays."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def last_seq(self, conversation_id: int) -> int:
        async with self.db.read() as session:
            seq = await session.scalar(
                select(Conversation.last_seq).where(Conversation.id == conversation_id)
            )
        return seq or 0

    async def last_seqs(self, conversation_ids: list[int]) -> dict[int, int]:
        async with self.db.read() as session:
            rows = await session.execute(
                select(Conversation.id, Conversation.last_seq).where(
                    Conversation.id.in_(conversation_ids)
                )
            )
            return dict(rows.all())

    async def between(self, conversation_id: int, after: int, upto: int) -> list[Envelope]:
        async with self.db.read() as session:
            rows = await session.scalars(
                select(Event)
                .where(
                    Event.conversation_id == conversation_id,
                    Event.seq > after,
                    Event.seq < upto,
                )
                .order_by(Event.seq)
            )
            return [envelope_of(row) for row in rows]
