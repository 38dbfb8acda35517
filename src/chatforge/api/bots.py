"""``/api/bots``: the registered bots and their analytics (B5, B6)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from chatforge.api.deps import Context, CurrentUser
from chatforge.api.schemas import ErrorOut

router = APIRouter(prefix="/api/bots", tags=["bots"], responses={401: {"model": ErrorOut}})

BotName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class BotOut(BaseModel):
    name: str
    description: str
    initial: str
    states: list[str]
    channels: list[str]
    quota_limit: int | None
    quota_window_hours: float | None


class KeywordCountOut(BaseModel):
    keyword: str
    requests: int
    counted: int


class DayCountOut(BaseModel):
    day: str
    requests: int
    counted: int
    refusals: int


class BotAnalyticsOut(BaseModel):
    bot: str
    since: datetime
    until: datetime
    requests: int
    counted: int
    unique_users: int
    quota_refusals: int
    handoffs: int
    errors: int
    by_keyword: list[KeywordCountOut]
    by_day: list[DayCountOut]
    by_outcome: dict[str, int]


@router.get("")
async def list_bots(user: CurrentUser, ctx: Context) -> list[BotOut]:
    """The bots of this server and the channels each one answers on."""
    return [BotOut.model_validate(info, from_attributes=True) for info in ctx.bots.list_bots(user)]


@router.get(
    "/{name}/analytics",
    responses={403: {"model": ErrorOut}, 404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
async def bot_analytics(
    name: BotName,
    user: CurrentUser,
    ctx: Context,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> BotAnalyticsOut:
    """Requests per keyword and per day, quota refusals, unique users and hand-offs
    (moderators and admins)."""
    analytics = await ctx.bots.analytics(user, name, days=days)
    return BotAnalyticsOut.model_validate(analytics, from_attributes=True)
