"""Where bots meet the rest of chatforge: transcripts, hand-off to humans, outbound delivery.

The runtime only talks to these small protocols. ``Transcript`` is implemented over the event
log by :class:`chatforge.bots.transcript.ConversationTranscript`. ``HandoffDesk`` (B4) by
:class:`chatforge.services.handoff.SupportHandoffDesk`: it opens a pending support conversation
in ``open``, finds users' open hand-offs in ``conversations_for`` (so their channel messages go
to the moderator instead of the bot) and posts them with the message service in ``forward``.
``NoHandoffDesk`` below is the runtime's default when it is built without one (the console, tests).

Steps come in batches (one write transaction for many webhooks), so the transaction-bound methods
take every user of the batch at once: a query per batch, not per message. They are synchronous
functions of the transaction's :class:`~chatforge.store.write_lane.Statements`, run in one of
its steps (one thread hop on SQLite) together with the rest of the batch's reads or writes.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from chatforge.realtime.envelope import Envelope
from chatforge.store.write_lane import Statements


class Person(Protocol):
    """Who talks to a bot: an account (``User``, or the gateway's lighter ``Account``)."""

    @property
    def id(self) -> int: ...

    @property
    def display_name(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Exchange:
    """One inbound message of a bot chat and the bot's replies to it."""

    bot: str
    person: Person
    channel: str
    inbound: str
    replies: list[str]


class Transcript(Protocol):
    def record(self, statements: Statements, exchanges: Sequence[Exchange]) -> list[Envelope]:
        """Keep these exchanges, in order, in the transaction of the bots' steps; returns the
        envelopes that tell live viewers, to publish once that transaction has committed."""

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """After that transaction committed: publish what ``record`` returned."""


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

    def conversations_for(
        self, statements: Statements, user_ids: Collection[int]
    ) -> dict[int, int]:
        """The open hand-off conversation of each of these users that has one, read in the
        caller's transaction."""

    async def forward(self, conversation_id: int, user_id: int, text: str, client_id: str) -> None:
        """Post the user's channel message into that conversation (idempotent on client_id)."""


class Outbox(Protocol):
    async def send(self, user_id: int, channel: str, text: str) -> None:
        """Deliver ``text`` to the user on ``channel`` (used for messages no webhook answers)."""


class NoTranscript:
    def record(self, statements: Statements, exchanges: Sequence[Exchange]) -> list[Envelope]:
        return []

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        return None


class NoHandoffDesk:
    """Hand-off before support conversations exist: the user is told nobody can take over."""

    notice = "Sorry, no mentor can take over this chat yet. Send help to see what I can do."

    async def open(self, ticket: HandoffTicket) -> str:
        return self.notice

    def conversations_for(
        self, statements: Statements, user_ids: Collection[int]
    ) -> dict[int, int]:
        return {}

    async def forward(self, conversation_id: int, user_id: int, text: str, client_id: str) -> None:
        raise RuntimeError("NoHandoffDesk never reports an open conversation")
