"""``/api/conversations``: support conversations and the messages of every kind (S1-S6, R1)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import JSONResponse, Response

from chatforge.api.deps import Context, CurrentUser, PathId
from chatforge.api.schemas import (
    ConversationOpenIn,
    ConversationOut,
    ErrorOut,
    EventsOut,
    MessageAck,
    MessageIn,
    MessageOut,
    QueuePositionOut,
    RatingIn,
    SupportStatusOut,
    TransferIn,
)
from chatforge.errors import NotFound
from chatforge.services.conversations import ConversationView
from chatforge.store.models import ConversationKind, ConversationStatus

router = APIRouter(
    prefix="/api",
    tags=["conversations"],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)

ConversationId = PathId


def out(view: ConversationView) -> ConversationOut:
    return ConversationOut(
        **{name: getattr(view, name) for name in ConversationView.__slots__},
        seconds_to_first_response=view.seconds_to_first_response,
        handling_seconds=view.handling_seconds,
    )


@router.get("/support/status")
async def support_status(user: CurrentUser, ctx: Context) -> SupportStatusOut:
    """How many moderators are online and how many people wait (S2)."""
    status = await ctx.support.status()
    return SupportStatusOut(moderators_online=status.moderators_online, pending=status.pending)


@router.post("/conversations", status_code=201, responses={200: {"model": ConversationOut}})
async def open_conversation(body: ConversationOpenIn, user: CurrentUser, ctx: Context) -> Response:
    """Open a support conversation on a topic (201); if one is open already, return it (200)."""
    result = await ctx.support.open(user, body.topic_id)
    return JSONResponse(
        out(result.conversation).model_dump(mode="json"),
        status_code=201 if result.created else 200,
    )


@router.get("/conversations")
async def list_conversations(
    user: CurrentUser,
    ctx: Context,
    status: ConversationStatus | None = None,
    kind: ConversationKind | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ConversationOut]:
    """Conversations you may see, newest first."""
    views = await ctx.conversations.visible(user, status=status, kind=kind, limit=limit)
    return [out(view) for view in views]


@router.get("/conversations/{conversation_id}")
async def get_conversation(
    conversation_id: ConversationId, user: CurrentUser, ctx: Context
) -> ConversationOut:
    return out(await ctx.conversations.get(user, conversation_id))


@router.get("/conversations/{conversation_id}/queue")
async def queue_position(
    conversation_id: ConversationId, user: CurrentUser, ctx: Context
) -> QueuePositionOut:
    """Your place in the queue and the estimated wait, while your conversation is pending."""
    found = await ctx.support.queue_position(user, conversation_id)
    if found is None:
        raise NotFound("This conversation is not waiting in the queue.", code="not_queued")
    return QueuePositionOut(position=found[0], estimated_wait_seconds=found[1])


@router.post("/conversations/{conversation_id}/claim", responses={409: {"model": ErrorOut}})
async def claim(
    conversation_id: ConversationId, user: CurrentUser, ctx: Context
) -> ConversationOut:
    """Take a pending conversation (moderators); 409 if someone was faster."""
    return out(await ctx.support.claim(user, conversation_id))


@router.post("/conversations/{conversation_id}/end", responses={409: {"model": ErrorOut}})
async def end(conversation_id: ConversationId, user: CurrentUser, ctx: Context) -> ConversationOut:
    return out(await ctx.support.end(user, conversation_id))


@router.post("/conversations/{conversation_id}/rating", responses={409: {"model": ErrorOut}})
async def rate(
    conversation_id: ConversationId, body: RatingIn, user: CurrentUser, ctx: Context
) -> ConversationOut:
    """Rate your finished conversation: excellent, satisfactory or poor."""
    return out(await ctx.support.rate(user, conversation_id, body.rating, body.comment))


@router.post("/conversations/{conversation_id}/transfer", responses={409: {"model": ErrorOut}})
async def transfer(
    conversation_id: ConversationId, body: TransferIn, user: CurrentUser, ctx: Context
) -> ConversationOut:
    """Hand your active conversation to another moderator."""
    return out(await ctx.support.transfer(user, conversation_id, body.moderator_id))


@router.get("/conversations/{conversation_id}/events")
async def events(
    conversation_id: ConversationId,
    user: CurrentUser,
    ctx: Context,
    after_seq: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> EventsOut:
    """Events after ``after_seq`` that you may see; page on with ``next_after_seq``."""
    page = await ctx.conversations.history(user, conversation_id, after_seq=after_seq, limit=limit)
    return EventsOut(events=page.events, next_after_seq=page.next_after_seq, last_seq=page.last_seq)


@router.get("/conversations/{conversation_id}/messages")
async def messages(
    conversation_id: ConversationId,
    user: CurrentUser,
    ctx: Context,
    before_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[MessageOut]:
    """Messages you may see, oldest first; page back with ``before_id``.

    Each comes with its reactions (counts and who reacted); deleted ones have an empty body.
    """
    rows = await ctx.conversations.message_views(
        user, conversation_id, before_id=before_id, limit=limit
    )
    return [MessageOut.model_validate(row) for row in rows]


@router.post(
    "/conversations/{conversation_id}/messages",
    status_code=201,
    responses={409: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
async def send_message(
    conversation_id: ConversationId, body: MessageIn, user: CurrentUser, ctx: Context
) -> MessageAck:
    """Send a message; the same ``client_id`` again returns the first ack (idempotent)."""
    result = await ctx.messages.post(
        user,
        conversation_id,
        body.body,
        client_id=body.client_id,
        recipient_id=body.recipient_id,
        reply_to=body.reply_to,
    )
    return MessageAck(seq=result.seq, message_id=result.message_id, duplicate=result.duplicate)
