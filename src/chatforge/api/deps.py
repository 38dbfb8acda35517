"""FastAPI dependencies shared by the REST routers, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from chatforge.context import AppContext
from chatforge.errors import Unauthenticated
from chatforge.store.models import User
from chatforge.web.origin import is_same_origin

SESSION_COOKIE = "cf_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_ID = 2**31 - 1

# A record id in a path: positive and within the database's integer range, else 422.
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]

bearer_scheme = HTTPBearer(auto_error=False, description="A token from POST /api/auth/token")
cookie_scheme = APIKeyCookie(
    name=SESSION_COOKIE, auto_error=False, description="The browser session cookie"
)


def get_context(conn: HTTPConnection) -> AppContext:
    ctx: AppContext = conn.app.state.ctx
    return ctx


Context = Annotated[AppContext, Depends(get_context)]


async def optional_user(
    request: Request,
    ctx: Context,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    cookie: Annotated[str | None, Depends(cookie_scheme)],
) -> User | None:
    """The caller, from a bearer token or the session cookie, or None when anonymous.

    The cookie is accepted for state-changing API calls only from pages of this site (Origin
    check), so another site cannot ride a logged-in browser's cookie.
    """
    if bearer is not None:
        token = bearer.credentials
    elif cookie:
        if request.method not in SAFE_METHODS and not is_same_origin(request, ctx.settings):
            raise Unauthenticated(
                "Cookie authentication needs a same-origin request.", code="cross_origin"
            )
        token = cookie
    else:
        return None
    return await ctx.accounts.user_for_token(ctx.tokens.read(token))


async def current_user(user: Annotated[User | None, Depends(optional_user)]) -> User:
    if user is None:
        raise Unauthenticated("Log in first.", code="not_authenticated")
    return user


CurrentUser = Annotated[User, Depends(current_user)]
OptionalUser = Annotated[User | None, Depends(optional_user)]
