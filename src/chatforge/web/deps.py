"""Dependencies of the page routes: the logged-in user from the cookie, and CSRF checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Form, Request

from chatforge.api.deps import SESSION_COOKIE, Context, cookie_scheme
from chatforge.errors import ChatforgeError, Forbidden, Unauthenticated
from chatforge.store.models import User
from chatforge.web.origin import is_same_origin
from chatforge.web.render import csrf_valid


async def page_user(
    request: Request,
    ctx: Context,
    cookie: Annotated[str | None, Depends(cookie_scheme)],
) -> User | None:
    """The user of the session cookie, or None; a stale cookie counts as logged out."""
    user: User | None = None
    if cookie:
        try:
            user = await ctx.accounts.user_for_token(ctx.tokens.read(cookie))
        except ChatforgeError:
            user = None
    request.state.user = user
    return user


async def require_page_user(user: Annotated[User | None, Depends(page_user)]) -> User:
    if user is None:
        raise Unauthenticated("Log in first.", code="not_authenticated")
    return user


async def verify_csrf(request: Request, ctx: Context) -> None:
    """Refuse a state-changing form unless it comes from our own page with a valid token."""
    if request.method in {"GET", "HEAD", "OPTIONS"}:
        return
    if not is_same_origin(request, ctx.settings):
        raise Forbidden("Cross-site form submission refused.", code="csrf")
    form = await request.form()
    token = form.get("csrf_token")
    if not csrf_valid(request, token if isinstance(token, str) else None):
        raise Forbidden(
            "This form has expired or did not come from chatforge; reload the page and try again.",
            code="csrf",
        )


# A form field as text; handlers validate it through the services.
FormStr = Annotated[str, Form()]
PageUser = Annotated[User, Depends(require_page_user)]
MaybePageUser = Annotated[User | None, Depends(page_user)]
SESSION = SESSION_COOKIE
