"""Bots as staff see them: the registry's bots and their analytics (B5, B6)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, distinct, func, select

from chatforge.bots.machine import BotDefinition
from chatforge.bots.registry import BotRegistry
from chatforge.errors import Invalid
from chatforge.services.policy import require_role
from chatforge.store.bot_models import BotInteraction
from chatforge.store.database import Database
from chatforge.store.models import Role, User
from chatforge.store.types import utcnow

MAX_DAYS = 366


@dataclass(frozen=True, slots=True)
class BotInfo:
    name: str
    description: str
    initial: str
    states: list[str]
    channels: list[str]
    quota_limit: int | None
    quota_window_hours: float | None


@dataclass(frozen=True, slots=True)
class KeywordCount:
    keyword: str
    requests: int
    counted: int


@dataclass(frozen=True, slots=True)
class DayCount:
    day: str
    requests: int
    counted: int
    refusals: int


@dataclass(frozen=True, slots=True)
class BotAnalytics:
    bot: str
    since: datetime
    until: datetime
    requests: int
    counted: int
    unique_users: int
    quota_refusals: int
    handoffs: int
    errors: int
    by_keyword: list[KeywordCount]
    by_day: list[DayCount]
    by_outcome: dict[str, int]


def _info(bot: BotDefinition, channels: list[str]) -> BotInfo:
    return BotInfo(
        name=bot.name,
        description=bot.description,
        initial=bot.initial,
        states=list(bot.states),
        channels=channels,
        quota_limit=bot.quota.limit if bot.quota else None,
        quota_window_hours=bot.quota.window.total_seconds() / 3600 if bot.quota else None,
    )


class BotService:
    def __init__(
        self, db: Database, registry: BotRegistry, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.db = db
        self.registry = registry
        self.clock = clock

    def list_bots(self, actor: User) -> list[BotInfo]:
        """Every registered bot with the channels it answers on (any signed-in user)."""
        return [_info(bot, self.registry.channels_of(bot.name)) for bot in self.registry.all()]

    async def analytics(
        self, actor: User, name: str, *, days: int = 30, now: datetime | None = None
    ) -> BotAnalytics:
        """Requests per keyword and per day, quota refusals, unique users and hand-offs of bot
        ``name`` over the last ``days`` days (moderators and admins).

        Raises ``Forbidden``, ``NotFound`` (no such bot) or ``Invalid`` (days out of range).
        """
        require_role(actor, Role.moderator)
        bot = self.registry.get(name)
        if not 1 <= days <= MAX_DAYS:
            raise Invalid(f"days must be 1-{MAX_DAYS}.", code="invalid_days")
        until = now or self.clock()
        since = until - timedelta(days=days)
        scope = (
            BotInteraction.bot == bot.name,
            BotInteraction.created_at > since,
            BotInteraction.created_at <= until,
        )
        counted = func.sum(case((BotInteraction.counted.is_(True), 1), else_=0))
        refused = func.sum(case((BotInteraction.outcome == "refused", 1), else_=0))
        day = func.date(BotInteraction.created_at)
        async with self.db.read() as session:
            totals = (
                await session.execute(
                    select(
                        func.count(), counted, func.count(distinct(BotInteraction.user_id))
                    ).where(*scope)
                )
            ).one()
            outcomes = await session.execute(
                select(BotInteraction.outcome, func.count())
                .where(*scope)
                .group_by(BotInteraction.outcome)
            )
            keywords = await session.execute(
                select(BotInteraction.keyword, func.count(), counted)
                .where(*scope)
                .group_by(BotInteraction.keyword)
                .order_by(func.count().desc(), BotInteraction.keyword)
                .limit(100)
            )
            per_day = await session.execute(
                select(day, func.count(), counted, refused)
                .where(*scope)
                .group_by(day)
                .order_by(day)
            )
            by_outcome = {str(outcome): int(n) for outcome, n in outcomes}
            return BotAnalytics(
                bot=bot.name,
                since=since,
                until=until,
                requests=int(totals[0]),
                counted=int(totals[1] or 0),
                unique_users=int(totals[2]),
                quota_refusals=by_outcome.get("refused", 0),
                handoffs=by_outcome.get("handoff", 0),
                errors=by_outcome.get("error", 0),
                by_keyword=[
                    KeywordCount(keyword=str(k), requests=int(n), counted=int(c or 0))
                    for k, n, c in keywords
                ],
                by_day=[
                    DayCount(day=str(d), requests=int(n), counted=int(c or 0), refusals=int(r or 0))
                    for d, n, c, r in per_day
                ],
                by_outcome=by_outcome,
            )
