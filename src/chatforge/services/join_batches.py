"""Joins in batches (L1): a class starts with everyone opening the room's link at once, and each
join was a transaction of its own through the asyncio ORM before (about 3.8 ms of CPU each: 500
people waited up to 1.9 s).

A batch is one write transaction (one hop on the write lane): it loads the rooms (locked) and
every membership its joiners ever had in them; then, in the order sent, each join is checked as
the one-join path checks it. A newcomer becomes a participant (the instructor if the room is
theirs), someone who left comes back with their old role, and someone already in changes
nothing. The new and returning members are written with one ``user_joined`` event each.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Select, and_, bindparam, insert, null, select, update

from chatforge.errors import Conflict, NotFound
from chatforge.realtime.envelope import Envelope
from chatforge.services.access import INSTRUCTOR, MEMBER, OPEN
from chatforge.services.message_writer import load_conversations
from chatforge.services.room_requests import RoomRequest, write_events
from chatforge.store.bulk import among, padded
from chatforge.store.models import ConversationKind, Participant
from chatforge.store.write_lane import Statements

_INSERT_MEMBER = insert(Participant)
_RETURN = (
    update(Participant)
    .where(
        and_(
            Participant.conversation_id == bindparam("room"),
            Participant.user_id == bindparam("user"),
        )
    )
    .values(left_at=null(), joined_at=bindparam("now"))
)


@dataclass(slots=True)
class Join(RoomRequest):
    """One person entering a room from its link."""


class Joined(NamedTuple):
    """A join's outcome: its ``user_joined`` event (None: the person was in already)."""

    envelope: Envelope | None


def no_session(conversation_id: int) -> NotFound:
    return NotFound(f"No session {conversation_id}.", code="session_not_found")


def session_ended() -> Conflict:
    return Conflict("This session has ended.", code="conversation_closed")


def joined_payload(user_id: int, name: str, role: str) -> dict[str, Any]:
    """The payload of ``user_joined``, on both paths."""
    return {"user_id": user_id, "name": name, "role": role}


class _Membership(NamedTuple):
    role: str
    left_at: datetime | None


def join_rooms(
    statements: Statements, joins: Sequence[Join], now: datetime
) -> list[Joined | Exception]:
    """A batch of joins in the caller's transaction; one outcome per join, in order."""
    conversations = load_conversations(statements, {j.conversation_id for j in joins})
    rooms = sorted(id for id, row in conversations.items() if row.kind is ConversationKind.session)
    members: dict[tuple[int, int], _Membership] = {}
    if rooms:
        size, params = padded("room", rooms)
        users_size, user_params = padded("user", sorted({j.actor_id for j in joins}))
        for room, user, role, left_at in statements.rows(
            _memberships_query(size, users_size), {**params, **user_params}
        ):
            members[(room, user)] = _Membership(role, left_at)

    outcomes: list[Joined | Exception] = []
    new: list[tuple[int, Join, str]] = []  # (its outcome's index, the join, the role)
    arrivals: list[dict[str, Any]] = []  # participants' rows to insert
    back: list[dict[str, Any]] = []  # who had left, to bring back
    for request in joins:
        conversation = conversations.get(request.conversation_id)
        if conversation is None or conversation.kind is not ConversationKind.session:
            outcomes.append(no_session(request.conversation_id))
            continue
        if conversation.status not in OPEN:
            outcomes.append(session_ended())
            continue
        key = (request.conversation_id, request.actor_id)
        membership = members.get(key)
        if membership is not None and membership.left_at is None:
            outcomes.append(Joined(None))
            continue
        if membership is None:
            role = INSTRUCTOR if request.actor_id == conversation.owner_id else MEMBER
            arrivals.append(
                {
                    "conversation_id": request.conversation_id,
                    "user_id": request.actor_id,
                    "role": role,
                    "joined_at": now,
                    "left_at": None,
                }
            )
        else:
            role = membership.role
            back.append({"room": request.conversation_id, "user": request.actor_id, "now": now})
        members[key] = _Membership(role, None)
        new.append((len(outcomes), request, role))
        outcomes.append(Joined(None))
    if new:
        _write(statements, new, arrivals, back, outcomes)
    return outcomes


def _write(
    statements: Statements,
    new: Sequence[tuple[int, Join, str]],
    arrivals: Sequence[dict[str, Any]],
    back: Sequence[dict[str, Any]],
    outcomes: list[Joined | Exception],
) -> None:
    """Insert the newcomers, bring back who had left, and write a ``user_joined`` each."""
    statements.run(_INSERT_MEMBER, arrivals)
    statements.run(_RETURN, back)
    envelopes = write_events(
        statements,
        "user_joined",
        [
            (request, joined_payload(request.actor_id, request.actor_name, role))
            for _, request, role in new
        ],
    )
    for (index, _, _), envelope in zip(new, envelopes, strict=True):
        outcomes[index] = Joined(envelope)


@functools.lru_cache(maxsize=16)
def _memberships_query(rooms: int, users: int) -> Select[int, int, str, datetime | None]:
    return select(
        Participant.conversation_id, Participant.user_id, Participant.role, Participant.left_at
    ).where(
        among(Participant.conversation_id, "room", rooms), among(Participant.user_id, "user", users)
    )
