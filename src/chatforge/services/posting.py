"""What posting a message produces, shared by the one-message path and the batched writer.

Both paths must store the same event for the same message: its type and payload are built here
and nowhere else.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from chatforge.store.models import ConversationKind

# Named tuples rather than frozen dataclasses: the batched writer makes both for every message,
# and a frozen dataclass sets each field through ``object.__setattr__``, several times slower.


class PostResult(NamedTuple):
    seq: int
    message_id: int
    duplicate: bool = False


class PostedMessage(NamedTuple):
    """A committed message and the conversation it went to, as listeners see it."""

    conversation_id: int
    kind: ConversationKind
    channel: str
    owner_id: int
    sender_id: int
    sender_name: str
    recipient_id: int | None
    seq: int
    message_id: int
    body: str


def message_event(
    *,
    message_id: int,
    sender_id: int,
    sender_name: str,
    body: str,
    client_id: str | None,
    recipient_id: int | None,
    reply_to: int | None,
    censored: bool = False,
) -> tuple[str, dict[str, Any]]:
    """The type and payload of the event that announces a new message."""
    payload: dict[str, Any] = {
        "message_id": message_id,
        "sender_id": sender_id,
        "sender_name": sender_name,
        "body": body,
        "client_id": client_id,
        "recipient_id": recipient_id,
        "reply_to": reply_to,
        **({"censored": True} if censored else {}),
    }
    return ("private_message" if recipient_id is not None else "chat_message"), payload
