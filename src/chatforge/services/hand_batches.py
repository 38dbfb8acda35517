"""Raised hands in batches (L5): "raise your hand if..." is a room's worth of raises at once,
each a transaction of its own through the asyncio ORM before (3.6 ms of CPU each).

A batch is one write transaction (one hop on the write lane): it loads the rooms (locked), the
raisers' memberships, their hands already up and each room's latest hand; then, in the order
sent, each raise is checked as the one-message path checks it and, unless that hand is up
already (from before, or earlier in the batch), goes up after every hand in its room. Raises of
one batch share one reading of the clock, so a hand that would tie with the room's latest gets
a microsecond more: the queue, ordered by ``raised_at``, keeps the order the hands went up in.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Select, func, insert, select

from chatforge.errors import ChatforgeError
from chatforge.realtime.envelope import Envelope
from chatforge.services.access import check_can_read_session, check_open
from chatforge.services.message_writer import (
    Unbatchable,
    load_conversations,
    member_roles,
)
from chatforge.services.room_requests import RoomRequest, write_events
from chatforge.store.bulk import among, padded
from chatforge.store.models import ConversationKind
from chatforge.store.session_models import RaisedHand
from chatforge.store.write_lane import Statements

_INSERT_HAND = insert(RaisedHand)
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class HandView:
    user_id: int
    name: str
    raised_at: datetime
    acknowledged: bool


@dataclass(slots=True)
class Raise(RoomRequest):
    """One person raising their hand in a room."""


class Raised(NamedTuple):
    """A raise's outcome, and its event to publish once committed (None: the hand was up)."""

    view: HandView
    envelope: Envelope | None


def raised_payload(user_id: int, name: str, raised_at: datetime) -> dict[str, Any]:
    """The payload of ``hand_raised``, on both paths."""
    return {"user_id": user_id, "name": name, "raised_at": raised_at.isoformat()}


def raise_hands(
    statements: Statements, raises: Sequence[Raise], now: datetime
) -> list[Raised | Exception]:
    """A batch of raises in the caller's transaction; one outcome per raise, in order.

    ``Unbatchable`` for what is not a session room (the one-message path answers it)."""
    conversations = load_conversations(statements, {r.conversation_id for r in raises})
    rooms = sorted(id for id, row in conversations.items() if row.kind is ConversationKind.session)
    users = {r.actor_id for r in raises}
    roles = member_roles(statements, rooms, users) if rooms else {}
    up: dict[tuple[int, int], tuple[datetime, bool]] = {}
    latest: dict[int, datetime] = {}
    if rooms:
        size, params = padded("room", rooms)
        users_size, user_params = padded("user", sorted(users))
        for room, user, raised_at, acknowledged_at in statements.rows(
            _hands_query(size, users_size), {**params, **user_params}
        ):
            up[(room, user)] = (raised_at, acknowledged_at is not None)
        for room, raised_at in statements.rows(_latest_query(size), params):
            # SQLite's max() hands back the stored text, without the column's time zone.
            latest[room] = raised_at if raised_at.tzinfo else raised_at.replace(tzinfo=UTC)

    outcomes: list[Raised | Exception] = []
    new: list[tuple[int, Raise, datetime]] = []  # (its outcome's index, the raise, raised_at)
    for request in raises:
        conversation = conversations.get(request.conversation_id)
        if conversation is None or conversation.kind is not ConversationKind.session:
            outcomes.append(Unbatchable(request.conversation_id, ConversationKind.session))
            continue
        key = (request.conversation_id, request.actor_id)
        try:
            check_can_read_session(request.actor_id, request.actor_role, conversation, key in roles)
            check_open(conversation)
        except ChatforgeError as refused:
            outcomes.append(refused)
            continue
        if key in up:
            raised_at, acknowledged = up[key]
            view = HandView(request.actor_id, request.actor_name, raised_at, acknowledged)
            outcomes.append(Raised(view, None))
            continue
        last = latest.get(request.conversation_id)
        raised_at = now if last is None or now > last else last + _TICK
        up[key] = (raised_at, False)
        latest[request.conversation_id] = raised_at
        new.append((len(outcomes), request, raised_at))
        outcomes.append(
            Raised(HandView(request.actor_id, request.actor_name, raised_at, False), None)
        )
    if new:
        _write(statements, new, outcomes)
    return outcomes


def _write(
    statements: Statements,
    new: Sequence[tuple[int, Raise, datetime]],
    outcomes: list[Raised | Exception],
) -> None:
    """Insert the new hands and their ``hand_raised`` events; give each outcome its envelope."""
    statements.run(
        _INSERT_HAND,
        [
            {
                "conversation_id": request.conversation_id,
                "user_id": request.actor_id,
                "raised_at": raised_at,
                "acknowledged_at": None,
                "acknowledged_by_id": None,
            }
            for _, request, raised_at in new
        ],
    )
    envelopes = write_events(
        statements,
        "hand_raised",
        [
            (request, raised_payload(request.actor_id, request.actor_name, raised_at))
            for _, request, raised_at in new
        ],
    )
    for (index, _, _), envelope in zip(new, envelopes, strict=True):
        raised = outcomes[index]
        assert isinstance(raised, Raised)
        outcomes[index] = Raised(raised.view, envelope)


@functools.lru_cache(maxsize=16)
def _hands_query(rooms: int, users: int) -> Select[int, int, datetime, datetime | None]:
    return select(
        RaisedHand.conversation_id,
        RaisedHand.user_id,
        RaisedHand.raised_at,
        RaisedHand.acknowledged_at,
    ).where(
        among(RaisedHand.conversation_id, "room", rooms), among(RaisedHand.user_id, "user", users)
    )


@functools.lru_cache(maxsize=8)
def _latest_query(rooms: int) -> Select[int, datetime]:
    return (
        select(RaisedHand.conversation_id, func.max(RaisedHand.raised_at))
        .where(among(RaisedHand.conversation_id, "room", rooms))
        .group_by(RaisedHand.conversation_id)
    )
