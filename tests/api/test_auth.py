"""``/api/auth``: registration, tokens, the login throttle, and what counts as a valid token."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest

from chatforge.api.deps import SESSION_COOKIE
from chatforge.store.models import Role
from tests.conftest import Api
from tests.factories import PASSWORD
from tests.servers import SECRET


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    body: dict[str, object] = response.json()
    assert body["code"] == code, body
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


# -- registration ---------------------------------------------------------------------------


def test_register_creates_a_user_account(api: Api, name: str) -> None:
    response = api.client.post(
        "/api/auth/register",
        json={"username": name, "password": PASSWORD, "display_name": "  Ada   Lovelace "},
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["username"] == name
    assert body["display_name"] == "Ada Lovelace"
    assert body["role"] == "user"
    assert body["is_active"] is True
    assert "password" not in json.dumps(body).lower()
    assert body["created_at"].endswith(("Z", "+00:00"))
    # The account works: its password gives a token for the same user.
    me = api.client.get("/api/me", headers=api.login(name))
    assert me.json()["id"] == body["id"]


def test_register_without_display_name_uses_the_username(api: Api, name: str) -> None:
    response = api.client.post("/api/auth/register", json={"username": name, "password": PASSWORD})

    assert response.status_code == 201
    assert response.json()["display_name"] == name


def test_register_cannot_choose_a_role(api: Api, name: str) -> None:
    response = api.client.post(
        "/api/auth/register", json={"username": name, "password": PASSWORD, "role": "admin"}
    )

    assert_error(response, 422, "invalid")
    assert "role" in response.json()["detail"]


def test_duplicate_username_is_a_conflict(api: Api, name: str) -> None:
    api.client.post("/api/auth/register", json={"username": name, "password": PASSWORD})

    response = api.client.post(
        "/api/auth/register", json={"username": name, "password": "another password"}
    )

    assert_error(response, 409, "username_taken")


def test_usernames_are_case_insensitive(api: Api) -> None:
    first = api.client.post("/api/auth/register", json={"username": "Alice", "password": PASSWORD})
    second = api.client.post("/api/auth/register", json={"username": "alice", "password": PASSWORD})

    assert first.status_code == 201
    assert first.json()["username"] == "alice"
    assert_error(second, 409, "username_taken")
    # Either spelling logs in to the one account.
    assert api.client.get("/api/me", headers=api.login("ALICE")).json()["id"] == first.json()["id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "ab", "password": PASSWORD}, "username"),
        ({"username": "a" * 33, "password": PASSWORD}, "username"),
        ({"username": "", "password": PASSWORD}, "username"),
        ({"username": "has space", "password": PASSWORD}, "username"),
        ({"username": "semi;colon", "password": PASSWORD}, "username"),
        ({"username": "ünïcode", "password": PASSWORD}, "username"),
        ({"username": "valid_name", "password": "Sh0rt!x"}, "password"),
        ({"username": "valid_name", "password": "p" * 129}, "password"),
        ({"username": "valid_name", "password": ""}, "password"),
        ({"username": "valid_name", "password": PASSWORD, "display_name": ""}, "display_name"),
        (
            {"username": "valid_name", "password": PASSWORD, "display_name": "d" * 65},
            "display_name",
        ),
        ({"password": PASSWORD}, "username"),
        ({"username": "valid_name"}, "password"),
        ({"username": 12345, "password": PASSWORD}, "username"),
        ({"username": "valid_name", "password": PASSWORD, "admin": True}, "admin"),
    ],
)
def test_register_rejects_bad_fields_readably(
    api: Api, body: dict[str, object], field: str
) -> None:
    response = api.client.post("/api/auth/register", json=body)

    assert_error(response, 422, "invalid")
    detail = response.json()["detail"]
    assert detail.startswith(field), detail
    # Where the problem is, and what it is; never the submitted value.
    assert ":" in detail
    if isinstance(body.get("password"), str) and len(str(body["password"])) > 3:
        assert str(body["password"]) not in response.text


def test_register_rejects_a_display_name_of_only_spaces(api: Api, name: str) -> None:
    response = api.client.post(
        "/api/auth/register", json={"username": name, "password": PASSWORD, "display_name": "   "}
    )

    assert_error(response, 422, "invalid_display_name")


def test_register_rejects_a_body_that_is_not_json(api: Api) -> None:
    response = api.client.post(
        "/api/auth/register", content=b"username=x", headers={"content-type": "text/plain"}
    )

    assert_error(response, 422, "invalid")


# -- tokens -----------------------------------------------------------------------------------


def test_token_is_a_bearer_token_for_me(api: Api) -> None:
    user = api.user(Role.moderator)

    response = api.client.post(
        "/api/auth/token", json={"username": user.username, "password": PASSWORD}
    )

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == api.ctx.settings.token_ttl_minutes * 60
    me = api.client.get("/api/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["username"] == user.username
    assert me.json()["role"] == "moderator"


def test_wrong_password_is_refused(api: Api) -> None:
    user = api.user()

    response = api.client.post(
        "/api/auth/token", json={"username": user.username, "password": "not the password"}
    )

    assert_error(response, 401, "bad_credentials")
    assert response.headers["www-authenticate"] == "Bearer"


def test_unknown_username_gets_the_same_answer_as_a_wrong_password(api: Api) -> None:
    user = api.user()
    wrong = api.client.post(
        "/api/auth/token", json={"username": user.username, "password": "not the password"}
    )
    unknown = api.client.post(
        "/api/auth/token", json={"username": "nobody-here", "password": "not the password"}
    )

    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()


def test_deactivated_user_gets_no_token(api: Api) -> None:
    admin, user = api.user(Role.admin), api.user()
    api.client.patch(f"/api/users/{user.id}", json={"active": False}, headers=api.auth(admin))

    response = api.client.post(
        "/api/auth/token", json={"username": user.username, "password": PASSWORD}
    )

    assert_error(response, 401, "account_inactive")


@pytest.mark.parametrize(
    "body",
    [{}, {"username": "x"}, {"username": "x", "password": ""}, {"username": "x", "password": 1}],
)
def test_token_request_must_name_username_and_password(api: Api, body: dict[str, object]) -> None:
    assert_error(api.client.post("/api/auth/token", json=body), 422, "invalid")


# -- login throttle ---------------------------------------------------------------------------


def fail_login(api: Api, username: str) -> int:
    response = api.client.post(
        "/api/auth/token", json={"username": username, "password": "wrong password!"}
    )
    return response.status_code


def test_ten_failures_for_one_username_lock_it(api: Api) -> None:
    user = api.user()
    limit = api.ctx.settings.login_failures_per_username
    assert limit == 10

    assert [fail_login(api, user.username) for _ in range(limit)] == [401] * limit

    # Even the right password is refused now, with the time to wait.
    response = api.client.post(
        "/api/auth/token", json={"username": user.username.upper(), "password": PASSWORD}
    )
    assert_error(response, 429, "rate_limited")
    retry_after = int(response.headers["retry-after"])
    assert 0 < retry_after <= api.ctx.settings.login_window_minutes * 60 + 1
    # Other accounts are not affected.
    other = api.user()
    assert api.login(other.username)


def test_a_success_before_the_limit_clears_the_username_counter(api: Api) -> None:
    user = api.user()
    for _ in range(9):
        fail_login(api, user.username)

    api.login(user.username)

    assert [fail_login(api, user.username) for _ in range(9)] == [401] * 9
    assert api.login(user.username)


def test_thirty_failures_from_one_address_lock_it_across_usernames(api: Api) -> None:
    per_ip = api.ctx.settings.login_failures_per_ip
    assert per_ip == 30
    usernames = [f"nobody{i}" for i in range(5)]
    # Six failures per username stay under the per-username limit; together they reach 30.
    statuses = [fail_login(api, username) for username in usernames for _ in range(6)]
    assert statuses == [401] * per_ip

    user = api.user()
    response = api.client.post(
        "/api/auth/token", json={"username": user.username, "password": PASSWORD}
    )

    assert_error(response, 429, "rate_limited")
    assert int(response.headers["retry-after"]) > 0


# -- what counts as a valid token ---------------------------------------------------------


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims_for(user_id: int, **changes: object) -> dict[str, object]:
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": str(user_id),
        "ver": 0,
        "iat": now,
        "exp": now + timedelta(hours=1),
    }
    claims.update(changes)
    return {key: value for key, value in claims.items() if value is not None}


def sign(claims: dict[str, object], key: str | bytes = SECRET) -> str:
    return jwt.encode(claims, key, algorithm="HS256")


def me_with(api: Api, token: str) -> httpx.Response:
    return api.client.get("/api/me", headers={"Authorization": f"Bearer {token}"})


def test_a_well_formed_token_signed_with_our_key_is_accepted(api: Api) -> None:
    # The control for the tests below: the same construction with nothing wrong works.
    user = api.user()

    response = me_with(api, sign(claims_for(user.id)))

    assert response.status_code == 200


def test_token_with_alg_none_is_refused(api: Api) -> None:
    user = api.user()
    now = int(datetime.now(UTC).timestamp())
    header = b64({"alg": "none", "typ": "JWT"})
    payload = b64({"sub": str(user.id), "ver": 0, "iat": now, "exp": now + 3600})

    for token in (f"{header}.{payload}.", f"{header}.{payload}"):
        assert_error(me_with(api, token), 401, "invalid_token")


def test_token_with_a_changed_subject_is_refused(api: Api) -> None:
    victim, attacker = api.user(Role.admin), api.user()
    header, _payload, signature = api.token(attacker).split(".")
    now = int(datetime.now(UTC).timestamp())
    forged = b64({"sub": str(victim.id), "ver": 0, "iat": now, "exp": now + 3600})

    assert_error(me_with(api, f"{header}.{forged}.{signature}"), 401, "invalid_token")


def test_expired_token_is_refused(api: Api) -> None:
    user = api.user()
    past = datetime.now(UTC) - timedelta(hours=2)
    token = sign(claims_for(user.id, iat=past, exp=past + timedelta(hours=1)))

    assert_error(me_with(api, token), 401, "token_expired")


def test_token_signed_with_another_key_is_refused(api: Api) -> None:
    user = api.user()
    token = sign(claims_for(user.id), key="another-secret-key-that-is-long-enough-987654")

    assert_error(me_with(api, token), 401, "invalid_token")


@pytest.mark.parametrize("missing", ["exp", "sub", "ver", "iat"])
def test_token_missing_a_required_claim_is_refused(api: Api, missing: str) -> None:
    user = api.user()
    claims = claims_for(user.id)
    del claims[missing]

    assert_error(me_with(api, sign(claims)), 401, "invalid_token")


@pytest.mark.parametrize(
    "token", ["garbage", "a.b.c", "", "Bearer", "eyJhbGciOiJIUzI1NiJ9.e30.", "..", "x" * 5000]
)
def test_garbage_token_is_refused(api: Api, token: str) -> None:
    response = me_with(api, token)

    assert response.status_code == 401
    assert set(response.json()) == {"detail", "code"}


def test_token_with_a_subject_that_is_not_a_number_is_refused(api: Api) -> None:
    assert_error(me_with(api, sign(claims_for(0, sub="admin"))), 401, "invalid_token")


def test_token_of_an_older_version_is_refused(api: Api) -> None:
    user = api.user()
    old = api.token(user)
    api.client.post(
        "/api/me/password",
        json={"current_password": PASSWORD, "new_password": "a brand new password"},
        headers={"Authorization": f"Bearer {old}"},
    )

    assert_error(me_with(api, old), 401, "session_revoked")


def test_token_of_a_deleted_user_is_refused(api: Api) -> None:
    assert_error(me_with(api, sign(claims_for(999_999))), 401, "session_revoked")


def test_other_authorization_schemes_are_anonymous(api: Api) -> None:
    user = api.user()

    response = api.client.get("/api/me", headers={"Authorization": f"Basic {api.token(user)}"})

    assert_error(response, 401, "not_authenticated")


# -- the session cookie on the API ---------------------------------------------------------


def test_session_cookie_authenticates_api_reads(api: Api) -> None:
    user = api.user()
    api.client.cookies.set(SESSION_COOKIE, api.token(user))

    response = api.client.get("/api/me", headers={"Origin": "https://evil.example"})

    assert response.status_code == 200
    assert response.json()["id"] == user.id


def test_cookie_on_an_unsafe_method_from_another_origin_is_refused(api: Api) -> None:
    user = api.user()
    api.client.cookies.set(SESSION_COOKIE, api.token(user))

    foreign = api.client.patch(
        "/api/me", json={"display_name": "Pwned"}, headers={"Origin": "https://evil.example"}
    )
    cross_site = api.client.patch(
        "/api/me", json={"display_name": "Pwned"}, headers={"Sec-Fetch-Site": "cross-site"}
    )

    assert_error(foreign, 401, "cross_origin")
    assert_error(cross_site, 401, "cross_origin")
    assert api.fresh(user).display_name == user.display_name


def test_cookie_on_an_unsafe_method_from_our_origin_is_accepted(api: Api) -> None:
    user = api.user()
    api.client.cookies.set(SESSION_COOKIE, api.token(user))

    response = api.client.patch(
        "/api/me",
        json={"display_name": "Same Site"},
        headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
    )

    assert response.status_code == 200, response.text
    assert api.fresh(user).display_name == "Same Site"


def test_bearer_token_wins_over_the_cookie(api: Api) -> None:
    cookie_user, bearer_user = api.user(), api.user()
    api.client.cookies.set(SESSION_COOKIE, api.token(cookie_user))

    response = api.client.patch(
        "/api/me",
        json={"display_name": "Bearer"},
        headers={**api.auth(bearer_user), "Origin": "https://evil.example"},
    )

    assert response.status_code == 200
    assert response.json()["id"] == bearer_user.id
