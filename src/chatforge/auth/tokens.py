"""Signed session tokens (JWT, HS256 only) for the API, WebSockets and the browser cookie.

A token names the user and the ``token_version`` it was issued under; the user and their role are
re-read from the database on every request, so a role change or deactivation applies at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from chatforge.errors import Unauthenticated

ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: int
    version: int


class TokenSigner:
    def __init__(self, key: bytes, ttl: timedelta) -> None:
        self._key = key
        self.ttl = ttl

    def issue(self, user_id: int, version: int) -> str:
        now = datetime.now(UTC)
        claims = {"sub": str(user_id), "ver": version, "iat": now, "exp": now + self.ttl}
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def read(self, token: str) -> TokenClaims:
        """Verify ``token``; raises ``Unauthenticated`` for anything but a valid, live token."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                options={"require": ["sub", "exp", "iat", "ver"]},
            )
            return TokenClaims(user_id=int(claims["sub"]), version=int(claims["ver"]))
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated(
                "Your session has expired; log in again.", code="token_expired"
            ) from exc
        except (jwt.InvalidTokenError, ValueError, TypeError) as exc:
            raise Unauthenticated("Invalid token.", code="invalid_token") from exc
