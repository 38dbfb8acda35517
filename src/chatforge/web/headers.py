"""Security headers on every HTTP response, and a request counter for /metrics.

A plain ASGI middleware (not ``BaseHTTPMiddleware``): it only edits the response start message, so
it adds no task or buffering per request and leaves WebSockets alone.
"""

from __future__ import annotations

from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
    "object-src 'none'"
)
# FastAPI's interactive API docs load Swagger UI / ReDoc from their CDN.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https:; "
    "frame-ancestors 'none'"
)

REQUESTS = Counter("chatforge_http_responses_total", "HTTP responses sent", ["method", "status"])


def security_headers(csp: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-security-policy", csp.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"x-frame-options", b"DENY"),
    ]


PAGE_HEADERS = security_headers(PAGE_CSP)
DOCS_HEADERS = security_headers(DOCS_CSP)


def count_response(method: str, status: int) -> None:
    """Count one response for /metrics."""
    REQUESTS.labels(method, str(status)).inc()


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        extra = DOCS_HEADERS if path in {"/docs", "/redoc"} else PAGE_HEADERS
        method: str = scope["method"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
                count_response(method, message["status"])
            await send(message)

        await self.app(scope, receive, send_with_headers)
