"""``/api/auth``: registration and token issue (A1)."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from chatforge.api.deps import Context
from chatforge.api.schemas import ErrorOut, RegisterIn, TokenIn, TokenOut, UserOut
from chatforge.store.models import User

router = APIRouter(prefix="/api/auth", tags=["auth"])


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    responses={409: {"model": ErrorOut}},
)
async def register(body: RegisterIn, ctx: Context) -> UserOut:
    """Create an account with the *user* role."""
    user = await ctx.accounts.register(body.username, body.password, body.display_name)
    return UserOut.model_validate(user)


@router.post("/token", responses={401: {"model": ErrorOut}, 429: {"model": ErrorOut}})
async def token(body: TokenIn, request: Request, ctx: Context) -> TokenOut:
    """Exchange a username and password for a bearer token."""
    user: User = await ctx.accounts.authenticate(body.username, body.password, client_ip(request))
    return TokenOut(
        access_token=ctx.tokens.issue(user.id, user.token_version),
        expires_in=int(ctx.tokens.ttl.total_seconds()),
    )
