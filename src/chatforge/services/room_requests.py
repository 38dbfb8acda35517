"""What a person asks of a live session room, queued for a batch (reactions, raised hands)."""

from __future__ import annotations

from dataclasses import dataclass, field

from chatforge.store.models import Role, User


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
