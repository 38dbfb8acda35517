"""Domain errors raised by the services.

Services never know about HTTP or WebSockets; they raise one of these and the transports map
them (``api/errors.py`` to JSON responses and HTML pages, the WebSocket endpoint to ``error``
frames). Each carries a stable machine-readable ``code``::

    ChatforgeError
    ├── Unauthenticated   401  who you are is unknown or no longer valid
    ├── Forbidden         403  you may not do this
    │   └── Muted         403  you are muted in this room; ``retry_after`` None if for good
    ├── NotFound          404  no such thing (or you may not know it exists)
    ├── Conflict          409  the current state does not allow it
    ├── Invalid           422  the input is wrong
    │   └── BadQuery      400  a search or filter the engine cannot run (e.g. full-text syntax)
    └── RateLimited       429  too many attempts; ``retry_after`` seconds to wait
"""

from __future__ import annotations


class ChatforgeError(Exception):
    status = 400
    default_code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code


class Unauthenticated(ChatforgeError):
    status = 401
    default_code = "unauthenticated"


class Forbidden(ChatforgeError):
    status = 403
    default_code = "forbidden"


class Muted(Forbidden):
    default_code = "muted"

    def __init__(self, message: str, *, retry_after: int | None) -> None:
        super().__init__(message)
        self.retry_after = None if retry_after is None else max(1, retry_after)


class NotFound(ChatforgeError):
    status = 404
    default_code = "not_found"


class Conflict(ChatforgeError):
    status = 409
    default_code = "conflict"


class Invalid(ChatforgeError):
    status = 422
    default_code = "invalid"


class BadQuery(Invalid):
    status = 400
    default_code = "bad_query"


class TryAgain(ChatforgeError):
    """The work could not be stored now and nothing of it was: sending it again is safe (a
    server shutting down, a database refusing writes). Platforms and clients retry a 503."""

    status = 503
    default_code = "try_again"


class RateLimited(ChatforgeError):
    status = 429
    default_code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = max(1, retry_after)
