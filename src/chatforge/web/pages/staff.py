"""Pages of the staff roles: the moderators' support queue and the annotators' to-do list."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from chatforge.api.deps import Context
from chatforge.web.deps import PageUser
from chatforge.web.render import render

router = APIRouter(include_in_schema=False)


@router.get("/annotate")
async def annotate(request: Request, user: PageUser, ctx: Context) -> Response:
    conversations = await ctx.conversations.finished(user)
    return render(request, "annotate.html", {"conversations": conversations})
