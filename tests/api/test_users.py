"""``/api/me`` and ``/api/users``: profiles and the admin's user management."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from chatforge.store.models import AuditRecord, Role
from tests.conftest import Api
from tests.factories import PASSWORD

NEW_PASSWORD = "a brand new password"


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    assert isinstance(body["detail"], str)
    assert body["detail"]


def audit_actions(api: Api, target_id: int) -> list[str]:
    async def read() -> list[str]:
        async with api.ctx.db.read() as session:
            rows = await session.scalars(
                select(AuditRecord.action)
                .where(AuditRecord.target_type == "user", AuditRecord.target_id == target_id)
                .order_by(AuditRecord.id)
            )
            return list(rows)

    return api.call(read)


# -- /api/me -------------------------------------------------------------------------------


def test_me_describes_the_caller(api: Api) -> None:
    user = api.user(Role.annotator)

    response = api.client.get("/api/me", headers=api.auth(user))

    assert response.status_code == 200
    assert response.json() == {
        "id": user.id,
        "username": user.username,
        "display_name": user.username,
        "role": "annotator",
        "is_active": True,
        "created_at": response.json()["created_at"],
    }


def test_me_needs_authentication(api: Api) -> None:
    response = api.client.get("/api/me")

    assert_error(response, 401, "not_authenticated")
    assert response.headers["www-authenticate"] == "Bearer"


def test_patch_me_changes_the_display_name(api: Api) -> None:
    user = api.user()

    response = api.client.patch(
        "/api/me", json={"display_name": "  Grace\tHopper "}, headers=api.auth(user)
    )

    assert response.status_code == 200
    assert response.json()["display_name"] == "Grace Hopper"
    assert api.client.get("/api/me", headers=api.auth(user)).json()["display_name"] == (
        "Grace Hopper"
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"display_name": ""}, "invalid"),
        ({"display_name": "x" * 65}, "invalid"),
        ({}, "invalid"),
        ({"display_name": "ok", "role": "admin"}, "invalid"),
        ({"display_name": "   "}, "invalid_display_name"),
        ({"display_name": "bell\x07"}, "invalid_display_name"),
    ],
)
def test_patch_me_rejects_bad_display_names(api: Api, body: dict[str, str], code: str) -> None:
    user = api.user()

    assert_error(api.client.patch("/api/me", json=body, headers=api.auth(user)), 422, code)
    assert api.fresh(user).display_name == user.display_name
    assert api.fresh(user).role is Role.user


def test_password_change_ends_old_tokens_and_swaps_the_password(api: Api) -> None:
    user = api.user()
    old_headers = api.login(user.username)

    response = api.client.post(
        "/api/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=old_headers,
    )

    assert response.status_code == 204
    assert_error(api.client.get("/api/me", headers=old_headers), 401, "session_revoked")
    wrong = api.client.post(
        "/api/auth/token", json={"username": user.username, "password": PASSWORD}
    )
    assert wrong.status_code == 401
    new_headers = api.login(user.username, NEW_PASSWORD)
    assert api.client.get("/api/me", headers=new_headers).status_code == 200
    assert audit_actions(api, user.id) == ["user.register", "user.change_password"]


def test_password_change_needs_the_current_password(api: Api) -> None:
    user = api.user()
    headers = api.auth(user)

    response = api.client.post(
        "/api/me/password",
        json={"current_password": "not my password", "new_password": NEW_PASSWORD},
        headers=headers,
    )

    assert_error(response, 422, "wrong_password")
    assert api.client.get("/api/me", headers=headers).status_code == 200
    assert api.login(user.username, PASSWORD)


@pytest.mark.parametrize("new", ["", "short", "x" * 129])
def test_password_change_rejects_bad_new_passwords(api: Api, new: str) -> None:
    user = api.user()

    response = api.client.post(
        "/api/me/password",
        json={"current_password": PASSWORD, "new_password": new},
        headers=api.auth(user),
    )

    assert_error(response, 422, "invalid")
    assert api.login(user.username, PASSWORD)


# -- /api/users (admin) ---------------------------------------------------------------------


def test_admin_lists_users_with_total_and_pages(api: Api) -> None:
    admin = api.user(Role.admin)
    others = [api.user() for _ in range(4)]
    headers = api.auth(admin)

    first = api.client.get("/api/users", params={"limit": 2}, headers=headers).json()
    second = api.client.get("/api/users", params={"limit": 2, "offset": 2}, headers=headers).json()
    beyond = api.client.get("/api/users", params={"offset": 100}, headers=headers).json()

    assert first["total"] == second["total"] == beyond["total"] == 5
    assert (first["offset"], first["limit"]) == (0, 2)
    ids = [u["id"] for u in first["items"]] + [u["id"] for u in second["items"]]
    assert ids == [admin.id, *(u.id for u in others[:3])]
    assert beyond["items"] == []


def test_admin_searches_users_by_username_or_display_name(api: Api) -> None:
    admin = api.user(Role.admin)
    api.user(username="alice_w")
    bob = api.user(username="bob_k")
    api.client.patch("/api/me", json={"display_name": "Wonderland Bob"}, headers=api.auth(bob))
    headers = api.auth(admin)

    def found(q: str) -> list[str]:
        response = api.client.get("/api/users", params={"q": q}, headers=headers)
        assert response.status_code == 200
        assert response.json()["total"] == len(response.json()["items"])
        return sorted(u["username"] for u in response.json()["items"])

    assert found("alice") == ["alice_w"]
    assert found("ALICE") == ["alice_w"]
    assert found("wonderland") == ["bob_k"]
    assert found("_") == ["alice_w", "bob_k"]  # '_' is a literal, not a LIKE wildcard
    assert found("%") == []
    assert found("nobody") == []


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 201}, {"offset": -1}, {"limit": "many"}, {"q": "q" * 65}],
)
def test_user_list_rejects_bad_paging(api: Api, params: dict[str, object]) -> None:
    admin = api.user(Role.admin)

    assert_error(
        api.client.get("/api/users", params=params, headers=api.auth(admin)), 422, "invalid"
    )


@pytest.mark.parametrize("role", [Role.user, Role.moderator, Role.annotator])
def test_only_admins_list_users(api: Api, role: Role) -> None:
    assert_error(api.client.get("/api/users", headers=api.auth(api.user(role))), 403, "forbidden")


def test_admin_reads_one_user(api: Api) -> None:
    admin, user = api.user(Role.admin), api.user()

    response = api.client.get(f"/api/users/{user.id}", headers=api.auth(admin))

    assert response.status_code == 200
    assert response.json()["username"] == user.username


def test_a_user_reads_themselves_but_nobody_else(api: Api) -> None:
    user, other = api.user(), api.user()

    assert api.client.get(f"/api/users/{user.id}", headers=api.auth(user)).status_code == 200
    assert_error(api.client.get(f"/api/users/{other.id}", headers=api.auth(user)), 403, "forbidden")


def test_admin_changes_a_role_which_applies_at_once(api: Api) -> None:
    admin, user = api.user(Role.admin), api.user()
    user_headers = api.auth(user)
    assert api.client.get("/api/users", headers=user_headers).status_code == 403

    response = api.client.patch(
        f"/api/users/{user.id}", json={"role": "admin"}, headers=api.auth(admin)
    )

    assert response.status_code == 200
    assert response.json()["role"] == "admin"
    # The same token, issued before the change, now carries the new role.
    assert api.client.get("/api/users", headers=user_headers).status_code == 200
    assert audit_actions(api, user.id) == ["user.register", "user.role"]


def test_deactivation_refuses_the_users_existing_token_at_once(api: Api) -> None:
    admin, user = api.user(Role.admin), api.user()
    user_headers = api.login(user.username)
    assert api.client.get("/api/me", headers=user_headers).status_code == 200

    response = api.client.patch(
        f"/api/users/{user.id}", json={"active": False}, headers=api.auth(admin)
    )

    assert response.status_code == 200
    assert response.json()["is_active"] is False
    assert_error(api.client.get("/api/me", headers=user_headers), 401, "session_revoked")


def test_reactivation_lets_the_user_log_in_but_keeps_old_tokens_dead(api: Api) -> None:
    admin, user = api.user(Role.admin), api.user()
    old_headers = api.login(user.username)
    admin_headers = api.auth(admin)
    api.client.patch(f"/api/users/{user.id}", json={"active": False}, headers=admin_headers)

    response = api.client.patch(
        f"/api/users/{user.id}", json={"active": True}, headers=admin_headers
    )

    assert response.json()["is_active"] is True
    assert api.client.get("/api/me", headers=old_headers).status_code == 401
    assert api.client.get("/api/me", headers=api.login(user.username)).status_code == 200
    assert audit_actions(api, user.id) == ["user.register", "user.deactivate", "user.activate"]


def test_admin_cannot_change_their_own_role(api: Api) -> None:
    admin = api.user(Role.admin)

    response = api.client.patch(
        f"/api/users/{admin.id}", json={"role": "user"}, headers=api.auth(admin)
    )

    assert_error(response, 403, "own_role")
    assert api.fresh(admin).role is Role.admin


def test_admin_cannot_deactivate_themselves(api: Api) -> None:
    admin = api.user(Role.admin)

    response = api.client.patch(
        f"/api/users/{admin.id}", json={"active": False}, headers=api.auth(admin)
    )

    assert_error(response, 403, "own_account")
    assert api.fresh(admin).is_active


def test_admin_changes_another_admins_role(api: Api) -> None:
    admin, other = api.user(Role.admin), api.user(Role.admin)

    response = api.client.patch(
        f"/api/users/{other.id}", json={"role": "moderator"}, headers=api.auth(admin)
    )

    assert response.json()["role"] == "moderator"


@pytest.mark.parametrize("role", [Role.user, Role.moderator, Role.annotator])
def test_only_admins_change_users(api: Api, role: Role) -> None:
    actor, target = api.user(role), api.user()

    for body in ({"role": "admin"}, {"active": False}):
        response = api.client.patch(f"/api/users/{target.id}", json=body, headers=api.auth(actor))
        assert_error(response, 403, "forbidden")
    # Not even themselves.
    response = api.client.patch(
        f"/api/users/{actor.id}", json={"role": "admin"}, headers=api.auth(actor)
    )
    assert_error(response, 403, "forbidden")
    assert api.fresh(target).is_active
    assert api.fresh(actor).role is role


@pytest.mark.parametrize(
    "body", [{"role": "superuser"}, {"role": ""}, {"active": "maybe"}, {"name": "x"}]
)
def test_user_patch_rejects_bad_bodies(api: Api, body: dict[str, object]) -> None:
    admin, user = api.user(Role.admin), api.user()

    response = api.client.patch(f"/api/users/{user.id}", json=body, headers=api.auth(admin))

    assert_error(response, 422, "invalid")


def test_unknown_user_is_not_found(api: Api) -> None:
    admin = api.user(Role.admin)
    headers = api.auth(admin)

    assert_error(api.client.get("/api/users/424242", headers=headers), 404, "user_not_found")
    assert_error(
        api.client.patch("/api/users/424242", json={"role": "user"}, headers=headers),
        404,
        "user_not_found",
    )
    assert_error(
        api.client.post(
            "/api/users/424242/password", json={"password": NEW_PASSWORD}, headers=headers
        ),
        404,
        "user_not_found",
    )


@pytest.mark.parametrize(
    "user_id", ["0", "-1", "2147483648", "99999999999999999999999", "1.5", "x"]
)
def test_out_of_range_user_ids_are_invalid_not_errors(api: Api, user_id: str) -> None:
    admin = api.user(Role.admin)
    headers = api.auth(admin)

    assert_error(api.client.get(f"/api/users/{user_id}", headers=headers), 422, "invalid")
    assert_error(
        api.client.patch(f"/api/users/{user_id}", json={"role": "user"}, headers=headers),
        422,
        "invalid",
    )
    assert_error(
        api.client.post(
            f"/api/users/{user_id}/password", json={"password": NEW_PASSWORD}, headers=headers
        ),
        422,
        "invalid",
    )


def test_admin_resets_a_password_and_ends_the_users_sessions(api: Api) -> None:
    admin, user = api.user(Role.admin), api.user()
    user_headers = api.login(user.username)

    response = api.client.post(
        f"/api/users/{user.id}/password", json={"password": NEW_PASSWORD}, headers=api.auth(admin)
    )

    assert response.status_code == 204
    assert api.client.get("/api/me", headers=user_headers).status_code == 401
    assert api.client.get(
        "/api/me", headers=api.login(user.username, NEW_PASSWORD)
    ).status_code == (200)
    assert audit_actions(api, user.id)[-1] == "user.reset_password"


@pytest.mark.parametrize("body", [{"password": "short"}, {"password": ""}, {}])
def test_password_reset_rejects_bad_passwords(api: Api, body: dict[str, str]) -> None:
    admin, user = api.user(Role.admin), api.user()

    response = api.client.post(f"/api/users/{user.id}/password", json=body, headers=api.auth(admin))

    assert_error(response, 422, "invalid")
    assert api.login(user.username, PASSWORD)


@pytest.mark.parametrize("role", [Role.user, Role.moderator, Role.annotator])
def test_only_admins_reset_passwords(api: Api, role: Role) -> None:
    actor, target = api.user(role), api.user()

    response = api.client.post(
        f"/api/users/{target.id}/password", json={"password": NEW_PASSWORD}, headers=api.auth(actor)
    )

    assert_error(response, 403, "forbidden")
    assert api.login(target.username, PASSWORD)
