"""argon2id password hashing, run off the event loop (hashing takes tens of milliseconds)."""

from __future__ import annotations

import anyio.to_thread
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher


class PasswordHasher:
    def __init__(self) -> None:
        self._hash = PasswordHash((Argon2Hasher(),))
        # Verifying against this keeps the time of a login for an unknown username the same as
        # for a known one, so response times do not reveal which usernames exist.
        self._decoy = self._hash.hash("chatforge-decoy-password")

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(self._hash.hash, password)

    async def verify(self, password: str, hashed: str | None) -> bool:
        if hashed is None:
            await anyio.to_thread.run_sync(self._hash.verify, password, self._decoy)
            return False
        return await anyio.to_thread.run_sync(self._hash.verify, password, hashed)
