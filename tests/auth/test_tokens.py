"""TokenSigner: HS256 tokens naming a user and the token version they were issued under."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest

from chatforge.auth.tokens import TokenClaims, TokenSigner
from chatforge.errors import Unauthenticated

KEY = b"k" * 64  # long enough for every HMAC size, so PyJWT has nothing to warn about


def test_a_token_reads_back_as_its_user_and_version() -> None:
    signer = TokenSigner(KEY, timedelta(minutes=5))

    token = signer.issue(42, 7)

    assert signer.read(token) == TokenClaims(user_id=42, version=7)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, KEY, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 5 * 60
    assert claims["sub"] == "42"


def test_a_token_of_another_installation_is_refused() -> None:
    token = TokenSigner(b"o" * 64, timedelta(minutes=5)).issue(1, 0)

    with pytest.raises(Unauthenticated) as raised:
        TokenSigner(KEY, timedelta(minutes=5)).read(token)

    assert raised.value.code == "invalid_token"


def test_an_expired_token_says_so() -> None:
    token = TokenSigner(KEY, timedelta(seconds=-1)).issue(1, 0)

    with pytest.raises(Unauthenticated) as raised:
        TokenSigner(KEY, timedelta(minutes=5)).read(token)

    assert raised.value.code == "token_expired"


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_other_algorithms_are_refused_even_with_our_key(algorithm: str) -> None:
    token = jwt.encode({"sub": "1", "ver": 0, "iat": 0, "exp": 2**40}, KEY, algorithm=algorithm)

    with pytest.raises(Unauthenticated):
        TokenSigner(KEY, timedelta(minutes=5)).read(token)
