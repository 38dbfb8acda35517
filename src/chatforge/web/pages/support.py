"""Support pages: the user's topic room, the chat panel, and the moderators' queue (S1-S6)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from chatforge.api.deps import Context, PathId
from chatforge.errors import ChatforgeError
from chatforge.services.access import OPEN
from chatforge.store.models import ConversationKind, Rating, Role
from chatforge.web.deps import FormStr, PageUser, verify_csrf
from chatforge.web.render import redirect, render

router = APIRouter(dependencies=[Depends(verify_csrf)], include_in_schema=False)

Id = PathId


def chat_url(conversation_id: int) -> str:
    return f"/support/conversations/{conversation_id}"


@router.get("/support")
async def topic_room(request: Request, user: PageUser, ctx: Context) -> Response:
    mine = await ctx.conversations.visible(user, kind=ConversationKind.support, limit=50)
    mine = [c for c in mine if c.owner_id == user.id]
    return render(
        request,
        "support/topics.html",
        {
            "topics": await ctx.topics.list(),
            "status": await ctx.support.status(),
            "open_conversation": next((c for c in mine if c.status in OPEN), None),
            "past": [c for c in mine if c.status not in OPEN],
        },
    )


@router.post("/support/start")
async def start(request: Request, user: PageUser, ctx: Context, topic_id: FormStr = "") -> Response:
    if not topic_id.isdigit() or not 1 <= int(topic_id) < 2**31:
        return redirect(request, "/support", flash=("error", "Pick a topic."))
    try:
        result = await ctx.support.open(user, int(topic_id))
    except ChatforgeError as exc:
        if exc.status in {401, 403}:
            raise
        return redirect(request, "/support", flash=("error", exc.message))
    if not result.created:
        return redirect(
            request,
            chat_url(result.conversation.id),
            flash=("info", "You already have an open conversation; here it is."),
        )
    return redirect(request, chat_url(result.conversation.id))


@router.get("/support/conversations/{conversation_id}")
async def chat(request: Request, conversation_id: Id, user: PageUser, ctx: Context) -> Response:
    conversation = await ctx.conversations.get(user, conversation_id)
    messages = await ctx.conversations.messages(user, conversation_id, limit=500)
    position = None
    if conversation.owner_id == user.id:
        position = await ctx.support.queue_position(user, conversation_id)
    moderators = []
    if user.role in (Role.moderator, Role.admin) and conversation.assignee_id == user.id:
        moderators = [m for m in await ctx.accounts.moderators(user) if m.id != user.id]
    return render(
        request,
        "support/chat.html",
        {
            "conversation": conversation,
            "messages": messages,
            "names": await ctx.accounts.display_names({m.sender_id for m in messages}),
            "position": position,
            "can_write": conversation.status in OPEN
            and user.id in (conversation.owner_id, conversation.assignee_id),
            "moderators": moderators,
            "ratings": list(Rating),
        },
    )


@router.post("/support/conversations/{conversation_id}/messages")
async def send(
    request: Request, conversation_id: Id, user: PageUser, ctx: Context, body: FormStr = ""
) -> Response:
    """The no-JavaScript way to send; the page's script sends over the WebSocket instead."""
    try:
        await ctx.messages.post(user, conversation_id, body)
    except ChatforgeError as exc:
        if exc.status in {401, 403, 404}:
            raise
        return redirect(request, chat_url(conversation_id), flash=("error", exc.message))
    return redirect(request, chat_url(conversation_id))


@router.post("/support/conversations/{conversation_id}/end")
async def end(request: Request, conversation_id: Id, user: PageUser, ctx: Context) -> Response:
    try:
        conversation = await ctx.support.end(user, conversation_id)
    except ChatforgeError as exc:
        if exc.status in {401, 403, 404}:
            raise
        return redirect(request, chat_url(conversation_id), flash=("error", exc.message))
    if conversation.owner_id == user.id:
        return redirect(
            request,
            chat_url(conversation_id),
            flash=("success", "Conversation ended. How did it go? Rate it below."),
        )
    return redirect(request, "/moderate", flash=("success", "Conversation ended."))


@router.post("/support/conversations/{conversation_id}/rating")
async def rate(
    request: Request,
    conversation_id: Id,
    user: PageUser,
    ctx: Context,
    rating: FormStr = "",
    comment: FormStr = "",
) -> Response:
    try:
        await ctx.support.rate(user, conversation_id, Rating(rating), comment[:1000])
    except ValueError:
        return redirect(request, chat_url(conversation_id), flash=("error", "Choose a rating."))
    except ChatforgeError as exc:
        if exc.status in {401, 403, 404}:
            raise
        return redirect(request, chat_url(conversation_id), flash=("error", exc.message))
    return redirect(request, "/support", flash=("success", "Thank you for your rating!"))


@router.post("/support/conversations/{conversation_id}/transfer")
async def transfer(
    request: Request, conversation_id: Id, user: PageUser, ctx: Context, moderator_id: FormStr = ""
) -> Response:
    try:
        target = int(moderator_id) if moderator_id.isdigit() else 0
        view = await ctx.support.transfer(user, conversation_id, target)
    except ChatforgeError as exc:
        if exc.status in {401, 403, 404}:
            raise
        return redirect(request, chat_url(conversation_id), flash=("error", exc.message))
    return redirect(
        request, "/moderate", flash=("success", f"Handed over to {view.assignee_name}.")
    )


@router.get("/moderate")
async def queue(request: Request, user: PageUser, ctx: Context) -> Response:
    conversations = await ctx.conversations.support_queue(user)
    return render(
        request,
        "support/queue.html",
        {
            "pending": [c for c in conversations if c.status.value == "pending"],
            "active": [c for c in conversations if c.status.value == "active"],
        },
    )


@router.post("/moderate/{conversation_id}/claim")
async def claim(request: Request, conversation_id: Id, user: PageUser, ctx: Context) -> Response:
    try:
        await ctx.support.claim(user, conversation_id)
    except ChatforgeError as exc:
        if exc.status in {401, 403}:
            raise
        return redirect(request, "/moderate", flash=("error", exc.message))
    return redirect(request, chat_url(conversation_id))
