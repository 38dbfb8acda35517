"""The one interface every channel implements, and what an inbound message looks like.

A channel *receives* (its webhook or loop turns a platform's payload into
:class:`InboundMessage` values for the :class:`~chatforge.channels.gateway.ChannelGateway`) and
*sends* (``send(external_id, text)``, for messages no webhook response can carry: a moderator's
reply, an idle timeout's message, Messenger's answers).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar


class ChannelError(Exception):
    """A platform refused or failed to take an outbound message."""


@dataclass(frozen=True, slots=True)
class InboundMessage:
    channel: str
    # The platform's id of the message (Twilio MessageSid, Messenger mid): retries repeat it.
    message_id: str
    # The sender as the platform names them, before normalisation.
    sender: str
    text: str
    profile_name: str | None = None


class Channel(ABC):
    name: ClassVar[str]
    # The longest text one platform message may carry; longer replies are split.
    max_text: ClassVar[int] = 4096

    @abstractmethod
    async def send(self, external_id: str, text: str) -> None:
        """Send ``text`` to the (normalised) ``external_id``; raises :class:`ChannelError`."""

    async def send_all(self, external_id: str, texts: Iterable[str]) -> None:
        for text in texts:
            for part in split_text(text, self.max_text):
                await self.send(external_id, part)


def split_text(text: str, limit: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``limit`` characters, at line or word ends."""
    parts: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = rest.rfind("\n", 0, limit)
        if cut < limit // 2:
            cut = rest.rfind(" ", 0, limit)
        if cut < limit // 2:
            cut = limit
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        parts.append(rest)
    return parts
