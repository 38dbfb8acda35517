"""Same-origin checks for cookie-authenticated requests (forms, API calls, WebSockets)."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from chatforge.settings import Settings


def allowed_origins(conn: HTTPConnection, settings: Settings) -> set[str]:
    """The configured public origin, and the origin the request itself was addressed to."""
    origins = {settings.public_origin}
    host = conn.headers.get("host")
    if host:
        scheme = "https" if conn.url.scheme in {"https", "wss"} else "http"
        origins.add(f"{scheme}://{host}")
    return origins


def is_same_origin(conn: HTTPConnection, settings: Settings) -> bool:
    """True unless the browser says the request comes from another site.

    Browsers send ``Sec-Fetch-Site`` and ``Origin`` on cross-site requests; non-browser clients
    usually send neither, and cannot carry a victim's cookie anyway.
    """
    fetch_site = conn.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in {"same-origin", "none"}:
        return False
    origin = conn.headers.get("origin")
    if origin is None:
        return True
    return origin.rstrip("/") in allowed_origins(conn, settings)
