"""``/api/me`` and ``/api/users``: profiles and the admin's user management (A3, A5)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from chatforge.api.deps import Context, CurrentUser, PathId
from chatforge.api.schemas import (
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
