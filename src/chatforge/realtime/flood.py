"""Per-socket flood control: a token bucket over the frames one client sends (pure).

A socket may send ``rate`` frames a second on average and ``burst`` at once. Frames over that
are refused before they are parsed (the cheapest possible refusal), with an ``error`` frame
``rate_limited`` that says when to try again, at most once a second. A client that keeps
flooding (``close_after`` refused frames without a quiet pause of ``forgive_after`` seconds)
is disconnected.
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
    close_after: int = 600
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
