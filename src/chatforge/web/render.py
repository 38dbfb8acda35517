"""Rendering pages: templates with the user, navigation, CSRF token and flash messages."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from chatforge.web.navigation import nav_for

TEMPLATES = Path(__file__).parent / "templates"
CSRF_COOKIE = "cf_csrf"
FLASH_COOKIE = "cf_flash"


def build_environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _key(request: Request) -> bytes:
    key: bytes = request.app.state.ctx.settings.signing_key
    return key


def _sign(key: bytes, purpose: str, value: str) -> str:
    return hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


# -- CSRF ----------------------------------------------------------------------------------
# A random value in a cookie, and in each form its HMAC: a page of another site can neither read
# the cookie nor compute the token. The Origin / Sec-Fetch-Site check is the second line.


def csrf_raw(request: Request) -> str:
    raw = request.cookies.get(CSRF_COOKIE)
    if raw and len(raw) <= 64:
        return raw
    if not hasattr(request.state, "new_csrf"):
        request.state.new_csrf = secrets.token_urlsafe(32)
    new: str = request.state.new_csrf
    return new


def csrf_token(request: Request) -> str:
    return _sign(_key(request), "csrf", csrf_raw(request))


def csrf_valid(request: Request, token: str | None) -> bool:
    raw = request.cookies.get(CSRF_COOKIE)
    if not raw or not token:
        return False
    return hmac.compare_digest(_sign(_key(request), "csrf", raw), token)


# -- flash messages -------------------------------------------------------------------------


def _encode_flash(key: bytes, messages: list[tuple[str, str]]) -> str:
    data = base64.urlsafe_b64encode(json.dumps(messages).encode()).decode()
    return f"{data}.{_sign(key, 'flash', data)}"


def _decode_flash(key: bytes, value: str | None) -> list[tuple[str, str]]:
    if not value or "." not in value:
        return []
    data, signature = value.rsplit(".", 1)
    if not hmac.compare_digest(_sign(key, "flash", data), signature):
        return []
    try:
        return [
            (str(level), str(text)) for level, text in json.loads(base64.urlsafe_b64decode(data))
        ]
    except (ValueError, TypeError):
        return []


def redirect(request: Request, url: str, *, flash: tuple[str, str] | None = None) -> Response:
    """A 303 redirect after a form, optionally carrying a message for the next page."""
    response = RedirectResponse(url, status_code=303)
    if flash is not None:
        pending = _decode_flash(_key(request), request.cookies.get(FLASH_COOKIE))
        response.set_cookie(
            FLASH_COOKIE,
            _encode_flash(_key(request), [*pending, flash]),
            httponly=True,
            samesite="lax",
            path="/",
        )
    return response


# -- pages ----------------------------------------------------------------------------------


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    env: Environment = request.app.state.templates
    user = getattr(request.state, "user", None)
    flashes = _decode_flash(_key(request), request.cookies.get(FLASH_COOKIE))
    values = {
        "request": request,
        "user": user,
        "nav": nav_for(user),
        "csrf_token": csrf_token(request),
        "flashes": flashes,
        "current_path": request.url.path,
        **(context or {}),
    }
    response = HTMLResponse(env.get_template(template).render(values), status, headers)
    settings = request.app.state.ctx.settings
    if hasattr(request.state, "new_csrf"):
        response.set_cookie(
            CSRF_COOKIE,
            request.state.new_csrf,
            httponly=True,
            samesite="lax",
            path="/",
            secure=settings.secure_cookies,
        )
    if flashes:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


ERROR_TITLES = {
    403: "You may not see this page",
    404: "Page not found",
    405: "Not allowed here",
    500: "Something went wrong",
}


def render_error_page(
    request: Request, status: int, detail: str, *, headers: dict[str, str] | None = None
) -> Response:
    title = ERROR_TITLES.get(status, "That did not work")
    if status >= 500:
        detail = "Something went wrong on our side. Please try again in a moment."
    try:
        return render(
            request,
            "error.html",
            {"status": status, "title": title, "detail": detail},
            status=status,
            headers=headers,
        )
    except Exception:
        # Rendering itself failed (for example the app is not started): plain text, never a loop.
        return HTMLResponse(f"<h1>{status}</h1>", status, headers)
