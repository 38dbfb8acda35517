"""Brokers carry envelopes from the process that committed an event to every process with
sockets interested in its topic.

``MemoryBroker`` serves one process. A broker between processes (Redis pub/sub) implements the
same interface; it is the fast path only: the hub notices missed events through ``seq`` and
reads them back from the database.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

from chatforge.realtime.envelope import Envelope

Deliver = Callable[[Envelope], Awaitable[None]]


class Broker(ABC):
    def __init__(self) -> None:
        self._deliver: Deliver | None = None

    def bind(self, deliver: Deliver) -> None:
        """Set where envelopes for subscribed topics go (the hub of this process)."""
        self._deliver = deliver

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect; called once in the application's lifespan."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Disconnect; called once at shutdown."""

    @property
    def healthy(self) -> bool:
        return True

    @abstractmethod
    async def publish(self, envelope: Envelope) -> None:
        """Send ``envelope`` to every process subscribed to its topic (this one included)."""

    @abstractmethod
    async def subscribe(self, topic: str) -> None:
        """Start receiving envelopes of ``topic`` in this process."""

    @abstractmethod
    async def unsubscribe(self, topic: str) -> None:
        """Stop receiving envelopes of ``topic`` in this process."""


class MemoryBroker(Broker):
    """One process: publishing is a direct call into the hub."""

    def __init__(self) -> None:
        super().__init__()
        self._topics: set[str] = set()

    async def publish(self, envelope: Envelope) -> None:
        if envelope.topic in self._topics and self._deliver is not None:
            await self._deliver(envelope)

    async def subscribe(self, topic: str) -> None:
        self._topics.add(topic)

    async def unsubscribe(self, topic: str) -> None:
        self._topics.discard(topic)
