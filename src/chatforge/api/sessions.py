"""``/api/sessions`` and the session-room actions on ``/api/conversations/{id}/...`` (L1-L12).

Thin: each route calls one service, which holds the rules the WebSocket frames share (L11).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response, StreamingResponse

from chatforge.api.conversations import out
from chatforge.api.deps import Context, CurrentUser, PathId
from chatforge.api.schemas import (
    EMOJI_RULE,
    ConversationOut,
    ErrorOut,
    HandOut,
    MuteIn,
    MuteOut,
    ParticipantOut,
    ReactionIn,
    ReactionOut,
    RoomOut,
    SeqOut,
    SessionCreateIn,
    SlowModeIn,
)
from chatforge.services.exports import ExportFormat
from chatforge.services.reactions import ReactionResult
from chatforge.services.sessions import RoomView

router = APIRouter(
    prefix="/api",
    tags=["sessions"],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        409: {"model": ErrorOut},
        422: {"model": ErrorOut},
    },
)

Id = PathId


def room_out(room: RoomView) -> RoomOut:
    return RoomOut(
        session=out(room.conversation),
        participants=[ParticipantOut.model_validate(p) for p in room.participants],
        hands=[HandOut.model_validate(h) for h in room.hands],
        slow_mode_seconds=room.slow_mode_seconds,
        is_instructor=room.is_instructor,
        my_mute=MuteOut.model_validate(room.my_mute) if room.my_mute else None,
        mutes=[MuteOut.model_validate(m) for m in room.mutes],
    )


def reaction_out(result: ReactionResult) -> ReactionOut:
    return ReactionOut(
        emoji=result.emoji,
        added=result.added,
        count=result.count,
        changed=result.changed,
        seq=result.seq,
    )


@router.post("/sessions", status_code=201)
async def create_session(body: SessionCreateIn, user: CurrentUser, ctx: Context) -> ConversationOut:
    """Open a live session room with you as its instructor (moderators and admins).

    Share its link, ``/sessions/{id}``: anyone logged in may join an active session.
    """
    return out(await ctx.sessions.create(user, body.title, body.topic_id))


@router.get("/sessions/{conversation_id}")
async def get_session(conversation_id: Id, user: CurrentUser, ctx: Context) -> RoomOut:
    """The room now: participants, raised hands, slow mode and mutes."""
    return room_out(await ctx.sessions.room(user, conversation_id))


@router.post("/sessions/{conversation_id}/join")
async def join_session(conversation_id: Id, user: CurrentUser, ctx: Context) -> ConversationOut:
    """Join an active session (a ``user_joined`` event); joining again changes nothing."""
    return out(await ctx.sessions.join(user, conversation_id))


@router.post("/sessions/{conversation_id}/leave", status_code=204)
async def leave_session(conversation_id: Id, user: CurrentUser, ctx: Context) -> Response:
    """Leave a session (a ``user_left`` event); your raised hand is lowered."""
    await ctx.sessions.leave(user, conversation_id)
    return Response(status_code=204)


@router.put("/conversations/{conversation_id}/slow-mode")
async def set_slow_mode(
    conversation_id: Id, body: SlowModeIn, user: CurrentUser, ctx: Context
) -> SlowModeIn:
    """Set the least seconds between two messages of a participant; 0 is off (instructors)."""
    return SlowModeIn(seconds=await ctx.sessions.set_slow_mode(user, conversation_id, body.seconds))


@router.delete("/conversations/{conversation_id}/messages/{message_id}")
async def delete_message(
    conversation_id: Id, message_id: Id, user: CurrentUser, ctx: Context
) -> SeqOut:
    """Soft-delete a message in a session (instructors): kept for the audit, shown as deleted."""
    return SeqOut(seq=await ctx.moderation.delete_message(user, conversation_id, message_id))


@router.post(
    "/conversations/{conversation_id}/messages/{message_id}/reactions",
    responses={429: {"model": ErrorOut}},
)
async def add_reaction(
    conversation_id: Id, message_id: Id, body: ReactionIn, user: CurrentUser, ctx: Context
) -> ReactionOut:
    """React with 👍 👏 ❤️ or 🔥 (10 reactions a minute; instructors are exempt)."""
    return reaction_out(await ctx.reactions.add(user, conversation_id, message_id, body.emoji))


@router.delete(
    "/conversations/{conversation_id}/messages/{message_id}/reactions",
    responses={429: {"model": ErrorOut}},
)
async def remove_reaction(
    conversation_id: Id,
    message_id: Id,
    user: CurrentUser,
    ctx: Context,
    emoji: Annotated[str, Query(min_length=1, max_length=16, json_schema_extra=EMOJI_RULE)],
) -> ReactionOut:
    """Take your reaction back (``?emoji=``)."""
    return reaction_out(await ctx.reactions.remove(user, conversation_id, message_id, emoji))


@router.get("/conversations/{conversation_id}/hands")
async def list_hands(conversation_id: Id, user: CurrentUser, ctx: Context) -> list[HandOut]:
    """Raised hands, in the order they went up."""
    return [HandOut.model_validate(h) for h in await ctx.hands.hands(user, conversation_id)]


@router.post("/conversations/{conversation_id}/hands", status_code=201)
async def raise_hand(conversation_id: Id, user: CurrentUser, ctx: Context) -> HandOut:
    """Raise your hand."""
    return HandOut.model_validate(await ctx.hands.raise_hand(user, conversation_id))


@router.delete("/conversations/{conversation_id}/hands", status_code=204)
async def lower_hand(
    conversation_id: Id,
    user: CurrentUser,
    ctx: Context,
    user_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    """Lower your hand, or with ``?user_id=`` someone else's (instructors)."""
    await ctx.hands.lower_hand(user, conversation_id, user_id)
    return Response(status_code=204)


@router.post("/conversations/{conversation_id}/hands/{user_id}/acknowledge")
async def acknowledge_hand(
    conversation_id: Id, user_id: Id, user: CurrentUser, ctx: Context
) -> HandOut:
    """Mark a raised hand as seen (instructors)."""
    return HandOut.model_validate(await ctx.hands.acknowledge(user, conversation_id, user_id))


@router.get("/conversations/{conversation_id}/mutes")
async def list_mutes(conversation_id: Id, user: CurrentUser, ctx: Context) -> list[MuteOut]:
    """Mutes in force (instructors)."""
    return [MuteOut.model_validate(m) for m in await ctx.moderation.mutes(user, conversation_id)]


@router.post("/conversations/{conversation_id}/mutes", status_code=201)
async def mute(conversation_id: Id, body: MuteIn, user: CurrentUser, ctx: Context) -> MuteOut:
    """Mute a participant for ``duration_minutes``, or until unmuted (instructors)."""
    muted = await ctx.moderation.mute(
        user,
        conversation_id,
        body.user_id,
        duration_minutes=body.duration_minutes,
        reason=body.reason,
    )
    return MuteOut.model_validate(muted)


@router.delete("/conversations/{conversation_id}/mutes/{user_id}", status_code=204)
async def unmute(conversation_id: Id, user_id: Id, user: CurrentUser, ctx: Context) -> Response:
    """Lift a mute (instructors)."""
    await ctx.moderation.unmute(user, conversation_id, user_id)
    return Response(status_code=204)


@router.get(
    "/conversations/{conversation_id}/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/json": {}, "text/csv": {}, "text/plain": {}}}},
)
async def export(
    conversation_id: Id,
    user: CurrentUser,
    ctx: Context,
    format: ExportFormat = ExportFormat.json,
    include_private: bool = False,
) -> StreamingResponse:
    """The room's messages as JSON, CSV or text, streamed. ``include_private`` is for
    instructors; deleted messages appear as deleted."""
    found = await ctx.exports.open(user, conversation_id, format, include_private=include_private)
    return StreamingResponse(
        found.chunks,
        media_type=found.media_type,
        headers={"Content-Disposition": f'attachment; filename="{found.filename}"'},
    )
