"""Map domain errors (and framework errors) to responses: JSON for the API, pages for people.

Every error body of the API is ``{"detail": "...", "code": "..."}``.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, RedirectResponse, Response

from chatforge.api.deps import SESSION_COOKIE
from chatforge.errors import ChatforgeError, Unauthenticated
from chatforge.web.deps import page_user
from chatforge.web.render import render_error_page

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid",
    429: "rate_limited",
}


def wants_json(request: Request) -> bool:
    path = request.url.path
    if path.startswith(("/api/", "/channels/", "/healthz", "/metrics")) or path == "/api":
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


async def error_response(
    request: Request,
    status: int,
    detail: str,
    code: str,
    headers: dict[str, str] | None = None,
) -> Response:
    if wants_json(request):
        return JSONResponse({"detail": detail, "code": code}, status_code=status, headers=headers)
    ctx = getattr(request.app.state, "ctx", None)
    if status < 500 and ctx is not None and not hasattr(request.state, "user"):
        # No page route ran (unknown URL, wrong method, bad path): look the visitor up anyway,
        # so the error page keeps their navigation instead of showing them as logged out.
        await page_user(request, ctx, request.cookies.get(SESSION_COOKIE))
    return render_error_page(request, status, detail, headers=headers)


async def domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ChatforgeError)
    headers: dict[str, str] = {}
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int):
        # Rate limits, and mutes that end by themselves: when trying again makes sense.
        headers["Retry-After"] = str(retry_after)
    if isinstance(exc, Unauthenticated):
        if not wants_json(request):
            target = request.url.path
            if request.url.query:
                target += "?" + request.url.query
            response = RedirectResponse(f"/login?next={_quote(target)}", status_code=303)
            return response
        headers["WWW-Authenticate"] = "Bearer"
    return await error_response(request, exc.status, exc.message, exc.code, headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return await error_response(request, exc.status_code, detail, code, dict(exc.headers or {}))


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    return f"{where}: {error.get('msg', 'invalid value')}" if where else str(error.get("msg"))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    detail = "; ".join(_describe(error) for error in errors) or "Invalid request."
    if not wants_json(request):
        return await error_response(request, 422, detail, "invalid")
    # Inputs are echoed back only as their location and message, never the raw value.
    fields = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors
    ]
    return JSONResponse({"detail": detail, "code": "invalid", "errors": fields}, status_code=422)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return await error_response(request, 500, "Something went wrong on our side.", "internal_error")


def _quote(target: str) -> str:
    return quote(target, safe="/")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ChatforgeError, domain_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, unexpected_error)
