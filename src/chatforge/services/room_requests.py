"""What a person asks of a live session room, queued for a batch (reactions, raised hands,
joins), and the events such batches write."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from chatforge.realtime.envelope import Envelope
from chatforge.services.eventlog import INSERT_ENCODED_EVENT, encoded_event
from chatforge.services.message_writer import reserve_seqs
from chatforge.store.models import Role, User
from chatforge.store.types import utcnow
from chatforge.store.write_lane import Statements


@dataclass(slots=True)
class RoomRequest:
    """A request by ``actor`` in room ``conversation_id``, with the user's fields a batch reads
    copied out of the ORM object once (its instrumented attributes cost on every read)."""

    actor: User
    conversation_id: int
    actor_id: int = field(init=False)
    actor_name: str = field(init=False)
    actor_role: Role = field(init=False)

    def __post_init__(self) -> None:
        self.actor_id = self.actor.id
        self.actor_name = self.actor.display_name
        self.actor_role = self.actor.role


def write_events(
    statements: Statements, type: str, requests: Sequence[tuple[RoomRequest, dict[str, Any]]]
) -> list[Envelope]:
    """One event of ``type`` per (request, payload), by the request's actor, numbered in each
    room after its latest; inserted in the caller's transaction. Their envelopes, in order."""
    seqs = reserve_seqs(statements, Counter(request.conversation_id for request, _ in requests))
    created_at = utcnow()
    events: list[dict[str, Any]] = []
    envelopes: list[Envelope] = []
    for request, payload in requests:
        event, envelope = encoded_event(
            type=type,
            conversation_id=request.conversation_id,
            seq=next(seqs[request.conversation_id]),
            actor_id=request.actor_id,
            created_at=created_at,
            payload=payload,
        )
        events.append(event)
        envelopes.append(envelope)
    statements.run(INSERT_ENCODED_EVENT, events)
    return envelopes
