"""Password hashing: argon2id at production cost, and no timing shortcut for unknown users."""

from __future__ import annotations

import pytest
from pwdlib.hashers.argon2 import Argon2Hasher

from chatforge.auth import passwords
from chatforge.auth.passwords import PasswordHasher


async def test_passwords_are_hashed_with_argon2id_at_production_cost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(passwords, "Argon2Hasher", Argon2Hasher)  # undo the tests' cheap hashing
    hasher = PasswordHasher()

    hashed = await hasher.hash("correct horse battery")

    assert hashed.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert await hasher.verify("correct horse battery", hashed)
    assert not await hasher.verify("correct horse batterY", hashed)


async def test_the_same_password_hashes_differently_each_time() -> None:
    hasher = PasswordHasher()

    assert await hasher.hash("same password") != await hasher.hash("same password")


async def test_an_account_without_a_password_never_verifies() -> None:
    hasher = PasswordHasher()

    assert not await hasher.verify("chatforge-decoy-password", None)
    assert not await hasher.verify("", None)
