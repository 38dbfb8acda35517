"""The bots page: registered bots and each one's analytics (B5), for moderators and admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from chatforge.api.deps import Context
from chatforge.services.policy import require_role
from chatforge.store.models import Role
from chatforge.web.deps import PageUser
from chatforge.web.render import render

router = APIRouter(include_in_schema=False)


@router.get("/bots")
async def bots(request: Request, user: PageUser, ctx: Context) -> Response:
    require_role(user, Role.moderator)
    return render(request, "bots.html", {"bots": ctx.bots.list_bots(user)})


@router.get("/bots/{name}")
async def bot_page(
    request: Request,
    user: PageUser,
    ctx: Context,
    name: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")],
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> Response:
    analytics = await ctx.bots.analytics(user, name, days=days)
    peak = max((d.requests for d in analytics.by_day), default=0)
    return render(request, "bot_analytics.html", {"a": analytics, "days": days, "peak": peak or 1})
