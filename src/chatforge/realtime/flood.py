"""Per-socket flood control: a token bucket over the frames one client sends (pure).

A socket may send ``rate`` frames a second on average and ``burst`` at once. A frame over that
is dropped before it is parsed as JSON, with an ``error`` frame ``rate_limited`` that says when
to try again (at most once a second). A client that keeps flooding (``close_after`` dropped
frames without a quiet pause of ``forgive_after`` seconds) is disconnected with 1008: the
server still has to read every frame off the socket, so a flood is cut short rather than
merely ignored.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum


class Verdict(Enum):
    accept = "accept"
    refuse = "refuse"  # drop the frame, tell the client
    refuse_quietly = "refuse_quietly"  # drop the frame, the client was told a moment ago
    disconnect = "disconnect"


@dataclass
class FrameBudget:
    rate: float = 30.0
    burst: float = 60.0
    close_after: int = 120
    forgive_after: float = 5.0
    clock: Callable[[], float] = time.monotonic
    tokens: float = field(init=False)
    updated: float = field(init=False)
    refused: int = field(default=0, init=False)
    last_refusal: float = field(default=-math.inf, init=False)
    last_notice: float = field(default=-math.inf, init=False)

    def __post_init__(self) -> None:
        self.tokens = self.burst
        self.updated = self.clock()

    def take(self) -> Verdict:
        """Spend one token for an incoming frame, and say what to do with it."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if now - self.last_refusal > self.forgive_after:
            self.refused = 0
        if self.tokens >= 1:
            self.tokens -= 1
            return Verdict.accept
        self.refused += 1
        self.last_refusal = now
        if self.refused > self.close_after:
            return Verdict.disconnect
        if now - self.last_notice >= 1.0:
            self.last_notice = now
            return Verdict.refuse
        return Verdict.refuse_quietly

    @property
    def retry_after(self) -> int:
        """Whole seconds until the next frame would be accepted (at least 1)."""
        return max(1, math.ceil((1 - self.tokens) / self.rate))


@dataclass
class FloodCooldown:
    """Users disconnected for flooding, who may not open a new socket on this process for a
    while: reconnecting at once would make every flood cost a handshake and a login."""

    seconds: float = 10.0
    clock: Callable[[], float] = time.monotonic
    _until: dict[int, float] = field(default_factory=dict)

    def start(self, user_id: int) -> None:
        now = self.clock()
        # Forget expired entries as new ones come, so the map stays as small as the floods.
        self._until = {uid: t for uid, t in self._until.items() if t > now}
        self._until[user_id] = now + self.seconds

    def active(self, user_id: int) -> bool:
        return self._until.get(user_id, -math.inf) > self.clock()
