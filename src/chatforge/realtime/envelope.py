"""What travels through the broker: one event, serialized once, with who may receive it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from chatforge.realtime.wire import text_frame

# Compact separators: frames are written to many sockets, every byte counts. One encoder for
# every frame: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def dumps(frame: dict[str, Any]) -> str:
    return _ENCODER.encode(frame)


def conversation_topic(conversation_id: int) -> str:
    return f"conv:{conversation_id}"


def user_topic(user_id: int) -> str:
    return f"user:{user_id}"


SESSION_REVOKED_FRAME = dumps(
    {"type": "session_revoked", "message": "This account was closed; log in again."}
)
"""Sent on ``user:<id>`` when an account's sessions end: its sockets send it, then close."""

QUEUE_TOPIC = "queue:support"
PRESENCE_TOPIC = "presence"


@dataclass(frozen=True, slots=True)
class Envelope:
    topic: str
    frame: str
    """The frame exactly as sockets receive it (JSON text), built once per event."""
    seq: int | None = None
    """The event's place in its conversation; None for ephemeral signals (typing, presence)."""
    audience: frozenset[int] | None = None
    """User ids that may receive it; None means everyone subscribed to the topic."""
    exclude: int | None = None
    """A user id not to send it to (the typist of a typing signal)."""
    wire: bytes = field(init=False, repr=False, compare=False)
    """The WebSocket frame carrying ``frame``, encoded once for every socket it goes to."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "wire", text_frame(self.frame))

    def visible_to(self, user_id: int) -> bool:
        if self.exclude == user_id:
            return False
        return self.audience is None or user_id in self.audience

    def encode(self) -> bytes:
        """Wire form for brokers between processes: a JSON header line, then the frame."""
        header = {
            "t": self.topic,
            "s": self.seq,
            "a": sorted(self.audience) if self.audience is not None else None,
            "x": self.exclude,
        }
        return (dumps(header) + "\n" + self.frame).encode()

    @classmethod
    def decode(cls, data: bytes) -> Envelope:
        header_text, frame = data.decode().split("\n", 1)
        header = json.loads(header_text)
        audience = header.get("a")
        return cls(
            topic=header["t"],
            frame=frame,
            seq=header.get("s"),
            audience=frozenset(audience) if audience is not None else None,
            exclude=header.get("x"),
        )
