"""Pages for everyone: home, login, registration, logout, profile, features."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response, StreamingResponse

from chatforge.api.auth import client_ip
from chatforge.api.deps import SESSION_COOKIE, Context
from chatforge.errors import ChatforgeError, Invalid, RateLimited, Unauthenticated
from chatforge.store.models import Role, User
from chatforge.web.deps import FormStr, MaybePageUser, PageUser, verify_csrf
from chatforge.web.render import redirect, render

router = APIRouter(dependencies=[Depends(verify_csrf)], include_in_schema=False)


def safe_next(target: str | None) -> str:
    """Only local paths: never redirect to another site after login."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


def logged_in(request: Request, ctx: Context, user: User, target: str) -> Response:
    response = redirect(request, target)
    response.set_cookie(
        SESSION_COOKIE,
        ctx.tokens.issue(user.id, user.token_version),
        max_age=int(ctx.tokens.ttl.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=ctx.settings.secure_cookies,
        path="/",
    )
    return response


@router.get("/")
async def home(request: Request, user: MaybePageUser, ctx: Context) -> Response:
    topics = await ctx.topics.list() if user is not None else []
    return render(request, "home.html", {"topics": topics})


@router.get("/login")
async def login_page(request: Request, user: MaybePageUser, next: str = "/") -> Response:
    if user is not None:
        return redirect(request, safe_next(next))
    return render(request, "login.html", {"next": safe_next(next)})


@router.post("/login")
async def login(
    request: Request,
    ctx: Context,
    _user: MaybePageUser,
    username: FormStr = "",
    password: FormStr = "",
    next: FormStr = "/",
) -> Response:
    try:
        user = await ctx.accounts.authenticate(username[:64], password[:128], client_ip(request))
    except (Unauthenticated, RateLimited) as exc:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
        return render(
            request,
            "login.html",
            {"error": exc.message, "username": username[:64], "next": safe_next(next)},
            status=exc.status,
            headers=headers,
        )
    return logged_in(request, ctx, user, safe_next(next))


@router.get("/register")
async def register_page(request: Request, _user: MaybePageUser) -> Response:
    return render(request, "register.html")


@router.post("/register")
async def register(
    request: Request,
    ctx: Context,
    _user: MaybePageUser,
    username: FormStr = "",
    password: FormStr = "",
    display_name: FormStr = "",
) -> Response:
    try:
        user = await ctx.accounts.register(username, password, display_name or None)
    except ChatforgeError as exc:
        return render(
            request,
            "register.html",
            {"error": exc.message, "username": username[:64], "display_name": display_name[:64]},
            status=exc.status,
        )
    response = logged_in(request, ctx, user, "/")
    return _with_flash(request, response, ("success", f"Welcome, {user.display_name}!"))


def _with_flash(request: Request, response: Response, flash: tuple[str, str]) -> Response:
    carrier = redirect(request, response.headers["location"], flash=flash)
    for header, value in response.raw_headers:
        if header == b"set-cookie":
            carrier.raw_headers.append((header, value))
    return carrier


@router.post("/logout")
async def logout(request: Request, _user: MaybePageUser) -> Response:
    response = redirect(request, "/login", flash=("info", "You are logged out."))
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/profile")
async def profile(request: Request, user: PageUser) -> Response:
    return render(request, "profile.html")


@router.get("/profile/export")
async def export_my_data(user: PageUser, ctx: Context) -> StreamingResponse:
    """Download everything chatforge holds about you (A6), the same document as /api/me/export."""
    return StreamingResponse(
        ctx.privacy.export_own_data(user),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="chatforge-data-{user.id}.json"',
            "Cache-Control": "no-store",
        },
    )


@router.post("/profile")
async def update_profile(
    request: Request, user: PageUser, ctx: Context, display_name: FormStr = ""
) -> Response:
    try:
        await ctx.accounts.update_profile(user, display_name=display_name)
    except Invalid as exc:
        return redirect(request, "/profile", flash=("error", exc.message))
    return redirect(request, "/profile", flash=("success", "Display name saved."))


@router.post("/profile/password")
async def change_password(
    request: Request,
    user: PageUser,
    ctx: Context,
    current_password: FormStr = "",
    new_password: FormStr = "",
) -> Response:
    try:
        updated = await ctx.accounts.change_password(
            user, current=current_password[:128], new=new_password
        )
    except Invalid as exc:
        return redirect(request, "/profile", flash=("error", exc.message))
    # The change ended every session of this user; keep this browser logged in with a new one.
    response = logged_in(request, ctx, updated, "/profile")
    return _with_flash(request, response, ("success", "Password changed."))


@router.get("/features")
async def features(request: Request, ctx: Context, user: MaybePageUser) -> Response:
    texts = await ctx.features.texts()
    return render(request, "features.html", {"texts": texts, "roles": list(Role)})
