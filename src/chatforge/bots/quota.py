"""Rolling request quotas (B3): "at most N counted requests in any window of W".

Pure arithmetic over the times of the counted requests; the runtime reads those times from the
interaction log, so a restart loses nothing and the clock can be injected in tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class QuotaStatus:
    """Where a user stands against a quota at one instant."""

    limit: int
    used: int
    # When the oldest counted request leaves the window, if the user is at the limit now.
    next_available_at: datetime | None

    @property
    def allowed(self) -> bool:
        return self.used < self.limit

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


@dataclass(frozen=True, slots=True)
class RollingQuota:
    limit: int
    window: timedelta

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError("a quota allows at least one request")
        if self.window <= timedelta(0):
            raise ValueError("a quota window must be positive")

    def since(self, now: datetime) -> datetime:
        """The start of the window ending at ``now``; requests at or before it no longer count."""
        return now - self.window

    def status(self, counted_at: Iterable[datetime], now: datetime) -> QuotaStatus:
        """The quota at ``now``, given the times of the user's counted requests."""
        start = self.since(now)
        inside = sorted(t for t in counted_at if start < t <= now)
        used = len(inside)
        next_at = None
        if used >= self.limit:
            # Enough requests must leave the window to bring the count below the limit.
            next_at = inside[used - self.limit] + self.window
        return QuotaStatus(limit=self.limit, used=used, next_available_at=next_at)
