"""The web chat widget's page: a signed-in user talks to the web channel's bot (B2, B4).

The page's script talks over ``/ws`` (``bot_message`` frames); the form posts here when
JavaScript is off, and the page then shows the conversation as it is.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from chatforge.api.deps import Context
from chatforge.errors import ChatforgeError
from chatforge.web.deps import PageUser, verify_csrf
from chatforge.web.render import redirect, render

router = APIRouter(dependencies=[Depends(verify_csrf)], include_in_schema=False)

HISTORY = 200


@router.get("/chat")
async def bot_chat(request: Request, user: PageUser, ctx: Context) -> Response:
    state = await ctx.web_chat.state(user)
    messages = []
    if state.conversation_id is not None:
        messages = await ctx.conversations.messages(user, state.conversation_id, limit=HISTORY)
    last_seq = max((m.seq for m in messages), default=0)
    return render(
        request,
        "bot_chat.html",
        {"chat": state, "messages": messages, "last_seq": last_seq},
    )


@router.post("/chat")
async def send_to_bot(
    request: Request, user: PageUser, ctx: Context, body: Annotated[str, Form()] = ""
) -> Response:
    """The no-JavaScript way to talk to the bot; the page's script uses the WebSocket."""
    try:
        reply = await ctx.web_chat.send(user, body)
    except ChatforgeError as exc:
        if exc.status in {401, 403, 404}:
            raise
        return redirect(request, "/chat", flash=("error", exc.message))
    if reply.handoff_notice:
        return redirect(request, "/chat", flash=("info", reply.handoff_notice))
    return redirect(request, "/chat")
