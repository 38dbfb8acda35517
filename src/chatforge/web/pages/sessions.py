"""Live session pages (L1-L12): the list of your rooms, the join page, and the room itself,
in an instructor view (participants, hands queue, moderation, exports) and a participant view.

The room's live parts run over the WebSocket (``static/sessions.js``); the forms here are the
no-JavaScript way to create, join, leave and send.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from chatforge.api.deps import Context, PathId
from chatforge.errors import ChatforgeError, Forbidden
from chatforge.services.reactions import EMOJI
from chatforge.store.models import ConversationKind, Role
from chatforge.store.types import utcnow
from chatforge.web.deps import FormStr, PageUser, verify_csrf
from chatforge.web.render import redirect, render

router = APIRouter(dependencies=[Depends(verify_csrf)], include_in_schema=False)

Id = PathId


def room_url(conversation_id: int) -> str:
    return f"/sessions/{conversation_id}"


@router.get("/sessions")
async def sessions(request: Request, user: PageUser, ctx: Context) -> Response:
    mine = await ctx.conversations.visible(user, kind=ConversationKind.session, limit=100)
    return render(
        request,
        "sessions/list.html",
        {
            "sessions": mine,
            "can_create": user.role in (Role.moderator, Role.admin),
            "topics": await ctx.topics.list(),
        },
    )


@router.post("/sessions")
async def create(
    request: Request, user: PageUser, ctx: Context, title: FormStr = "", topic_id: FormStr = ""
) -> Response:
    try:
        topic = int(topic_id) if topic_id.isdigit() and int(topic_id) < 2**31 else None
        view = await ctx.sessions.create(user, title, topic)
    except ChatforgeError as exc:
        if exc.status in {401, 403}:
            raise
        return redirect(request, "/sessions", flash=("error", exc.message))
    return redirect(request, room_url(view.id), flash=("success", "Session created."))


@router.get("/sessions/{conversation_id}")
async def room(request: Request, conversation_id: Id, user: PageUser, ctx: Context) -> Response:
    try:
        state = await ctx.sessions.room(user, conversation_id)
    except Forbidden:
        # Not in it (yet): the link leads to a page with a join button.
        return render(request, "sessions/join.html", {"conversation_id": conversation_id})
    messages = await ctx.conversations.message_views(user, conversation_id, limit=500)
    names = {p.user_id: p.name for p in state.participants}
    missing = {m.sender_id for m in messages} | {m.recipient_id for m in messages if m.recipient_id}
    names.update(await ctx.accounts.display_names(missing - names.keys()))
    instructors = [p for p in state.participants if p.role == "instructor"]
    mute = state.my_mute
    return render(
        request,
        "sessions/room.html",
        {
            "room": state,
            "session": state.conversation,
            "messages": messages,
            "names": names,
            "emoji": EMOJI,
            "instructors": instructors,
            "instructor_ids": ",".join(str(p.user_id) for p in instructors),
            "members": [p for p in state.participants if p.role != "instructor"],
            "my_hand": any(h.user_id == user.id for h in state.hands),
            "mute_text": _mute_text(mute.reason, mute.seconds_left(utcnow())) if mute else "",
        },
    )


def _mute_text(reason: str, seconds_left: int | None) -> str:
    span = (
        "until an instructor unmutes you"
        if seconds_left is None
        else (f"for about {max(1, round(seconds_left / 60))} more min")
    )
    return f"You are muted {span}." + (f" Reason: {reason}" if reason else "")


@router.post("/sessions/{conversation_id}/join")
async def join(request: Request, conversation_id: Id, user: PageUser, ctx: Context) -> Response:
    try:
        await ctx.sessions.enter(user, conversation_id)
    except ChatforgeError as exc:
        if exc.status in {401, 403, 404}:
            raise
        return redirect(request, "/sessions", flash=("error", exc.message))
    return redirect(request, room_url(conversation_id))


@router.post("/sessions/{conversation_id}/leave")
async def leave(request: Request, conversation_id: Id, user: PageUser, ctx: Context) -> Response:
    try:
        await ctx.sessions.leave(user, conversation_id)
    except ChatforgeError as exc:
        if exc.status in {401, 404}:
            raise
        return redirect(request, room_url(conversation_id), flash=("error", exc.message))
    return redirect(request, "/sessions", flash=("info", "You left the session."))


@router.post("/sessions/{conversation_id}/messages")
async def send(
    request: Request,
    conversation_id: Id,
    user: PageUser,
    ctx: Context,
    body: FormStr = "",
    recipient_id: FormStr = "",
) -> Response:
    """The no-JavaScript way to send; the page's script sends over the WebSocket instead."""
    recipient = int(recipient_id) if recipient_id.isdigit() and int(recipient_id) < 2**31 else None
    try:
        await ctx.messages.post(user, conversation_id, body, recipient_id=recipient)
    except ChatforgeError as exc:
        if exc.status in {401, 404}:
            raise
        return redirect(request, room_url(conversation_id), flash=("error", exc.message))
    return redirect(request, room_url(conversation_id))
