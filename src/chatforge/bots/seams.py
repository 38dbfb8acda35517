"""Where bots meet the rest of chatforge: transcripts, hand-off to humans, outbound delivery.

The runtime only talks to these small protocols. ``Transcript`` is implemented over the event
log by :class:`chatforge.bots.transcript.ConversationTranscript`. ``HandoffDesk`` (B4) by
:class:`chatforge.services.handoff.SupportHandoffDesk`: it opens a pending support conversation
in ``open``, finds the user's open hand-off in ``conversation_for`` (so their channel messages go
to the moderator instead of the bot) and posts them with the message service in ``forward``.
``NoHandoffDesk`` below is the runtime's default when it is built without one (the console, tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession


class Transcript(Protocol):
    async def record(
        self,
        session: AsyncSession,
        *,
        bot: str,
        user_id: int,
        channel: str,
        inbound: str,
        replies: list[str],
    ) -> None:
        """Keep one exchange of a bot chat, in the transaction of the bot's step."""


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
        self,
        session: AsyncSession,
        *,
        bot: str,
        user_id: int,
        channel: str,
        inbound: str,
        replies: list[str],
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
