"""Where bots meet the rest of chatforge: transcripts, hand-off to humans, outbound delivery.

The runtime only talks to these small protocols. The implementations here are the ones that
work before the real-time engine exists: transcripts are not kept, nobody takes a hand-off, and
no conversation claims a user's channel messages. The message service replaces them (see
``docs/bots.md``, "Wiring"): ``Transcript.record`` appends to the user's ``bot`` conversation,
``HandoffDesk.open`` opens a pending support conversation, ``HandoffDesk.conversation_for``
finds a user's open hand-off so their channel messages go to the moderator instead of the bot.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession


class Direction(enum.StrEnum):
    inbound = "inbound"  # from the user to the bot
    outbound = "outbound"  # from the bot to the user


class Transcript(Protocol):
    async def record(
        self, *, bot: str, user_id: int, channel: str, text: str, direction: Direction
    ) -> None:
        """Keep one line of a bot chat (called after the bot's step has committed)."""


@dataclass(frozen=True, slots=True)
class HandoffTicket:
    bot: str
    user_id: int
    channel: str
    topic: str | None
    note: str


class HandoffDesk(Protocol):
    async def open(self, ticket: HandoffTicket) -> str:
        """Pass the user to a human; returns what to tell the user (called after commit)."""

    async def conversation_for(self, session: AsyncSession, user_id: int) -> int | None:
        """The user's open hand-off conversation, if any, read in the caller's transaction."""

    async def forward(self, conversation_id: int, user_id: int, text: str, client_id: str) -> None:
        """Post the user's channel message into that conversation (idempotent on client_id)."""


class Outbox(Protocol):
    async def send(self, user_id: int, channel: str, text: str) -> None:
        """Deliver ``text`` to the user on ``channel`` (used for messages no webhook answers)."""


class NoTranscript:
    async def record(
        self, *, bot: str, user_id: int, channel: str, text: str, direction: Direction
    ) -> None:
        return None


class NoHandoffDesk:
    """Hand-off before support conversations exist: the user is told nobody can take over."""

    notice = "Sorry, no mentor can take over this chat yet. Send help to see what I can do."

    async def open(self, ticket: HandoffTicket) -> str:
        return self.notice

    async def conversation_for(self, session: AsyncSession, user_id: int) -> int | None:
        return None

    async def forward(self, conversation_id: int, user_id: int, text: str, client_id: str) -> None:
        raise RuntimeError("NoHandoffDesk never reports an open conversation")
