"""``/api/me`` and ``/api/users``: profiles and the admin's user management (A3, A5)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import StreamingResponse

from chatforge.api.deps import Context, CurrentUser, PathId
from chatforge.api.schemas import (
    ErasureOut,
    ErrorOut,
    PasswordChangeIn,
    PasswordResetIn,
    ProfileIn,
    UserListOut,
    UserOut,
    UserPatch,
)

router = APIRouter(prefix="/api", tags=["users"], responses={401: {"model": ErrorOut}})

UserId = PathId


@router.get("/me")
async def me(user: CurrentUser) -> UserOut:
    """The account the request is authenticated as."""
    return UserOut.model_validate(user)


@router.patch("/me", responses={422: {"model": ErrorOut}})
async def update_me(body: ProfileIn, user: CurrentUser, ctx: Context) -> UserOut:
    updated = await ctx.accounts.update_profile(user, display_name=body.display_name)
    return UserOut.model_validate(updated)


@router.get(
    "/me/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/json": {}}}},
)
async def export_my_data(user: CurrentUser, ctx: Context) -> StreamingResponse:
    """Everything chatforge holds about you, as one JSON document (streamed): profile, channel
    identities, conversations with the messages you wrote, ratings, reactions, bot state and
    bot interactions."""
    return StreamingResponse(
        ctx.privacy.export_own_data(user),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="chatforge-data-{user.id}.json"',
            "Cache-Control": "no-store",
        },
    )


@router.post("/me/password", status_code=204, responses={422: {"model": ErrorOut}})
async def change_password(body: PasswordChangeIn, user: CurrentUser, ctx: Context) -> None:
    """Change your password; your other sessions and tokens stop working."""
    await ctx.accounts.change_password(user, current=body.current_password, new=body.new_password)


@router.get("/users", responses={403: {"model": ErrorOut}})
async def list_users(
    user: CurrentUser,
    ctx: Context,
    q: Annotated[str, Query(max_length=64)] = "",
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> UserListOut:
    """All accounts (admin), optionally filtered by a part of the username or display name."""
    page = await ctx.accounts.list_users(user, query=q, offset=offset, limit=limit)
    return UserListOut(
        items=[UserOut.model_validate(u) for u in page.users],
        total=page.total,
        offset=offset,
        limit=limit,
    )


@router.get("/users/{user_id}", responses={403: {"model": ErrorOut}, 404: {"model": ErrorOut}})
async def get_user(user_id: UserId, user: CurrentUser, ctx: Context) -> UserOut:
    return UserOut.model_validate(await ctx.accounts.get_user(user, user_id))


@router.patch("/users/{user_id}", responses={403: {"model": ErrorOut}, 404: {"model": ErrorOut}})
async def update_user(user_id: UserId, body: UserPatch, user: CurrentUser, ctx: Context) -> UserOut:
    """Change a user's role or (de)activate them (admin). You cannot change your own role."""
    updated = await ctx.accounts.update_user(user, user_id, role=body.role, active=body.active)
    return UserOut.model_validate(updated)


@router.post(
    "/users/{user_id}/password",
    status_code=204,
    responses={403: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)
async def reset_password(
    user_id: UserId, body: PasswordResetIn, user: CurrentUser, ctx: Context
) -> None:
    """Set a new password for a user (admin); their sessions end."""
    await ctx.accounts.reset_password(user, user_id, new_password=body.password)


@router.post(
    "/users/{user_id}/erase",
    responses={403: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)
async def erase_user(user_id: UserId, user: CurrentUser, ctx: Context) -> ErasureOut:
    """Erase a user (admin): their account is renamed ``erased-<id>`` and deactivated, the text
    of their messages replaced, their names, channel ids and bot state scrubbed, their sessions
    ended. Conversations keep their shape; an audit record of the erasure remains."""
    report = await ctx.privacy.erase_user(user, user_id)
    return ErasureOut(
        user_id=report.user_id,
        messages=report.messages,
        events=report.events,
        audit_records=report.audit_records,
    )
