"""Admin pages: topics, users and the features editor."""

from __future__ import annotations

import re
from html import unescape

import httpx
import pytest

from chatforge.store.models import Role, Topic, User
from tests.conftest import Api
from tests.factories import PASSWORD, make_conversation, make_topic

NEW_PASSWORD = "a brand new password"


def flashes(page: httpx.Response) -> list[str]:
    return [
        unescape(text) for text in re.findall(r'<p class="flash flash-\w+">(.*?)</p>', page.text)
    ]


def as_admin(api: Api) -> User:
    admin = api.user(Role.admin)
    api.browse_as(admin)
    return admin


def topic(api: Api, admin: User, name: str) -> Topic:
    return api.call(make_topic, api.ctx, admin, name, "")


def topic_rows(api: Api) -> dict[str, str]:
    """Topic name → state, as the admin topics page shows them."""
    page = api.client.get("/admin/topics")
    assert page.status_code == 200
    rows = re.findall(
        r'<tr data-topic="([^"]+)">.*?<span class="badge[^"]*">(\w+)</span>', page.text, re.S
    )
    return {unescape(name): state for name, state in rows}


# -- topics ---------------------------------------------------------------------------------


def test_admin_adds_a_topic(api: Api) -> None:
    as_admin(api)

    response = api.form("/admin/topics", {"name": "Git", "description": "Git commands"})

    assert response.status_code == 303
    assert response.headers["location"] == "/admin/topics"
    page = api.client.get("/admin/topics")
    assert flashes(page) == ["Topic “Git” added."]
    assert topic_rows(api) == {"Git": "active"}
    assert "Git commands" in page.text


def test_adding_a_duplicate_topic_explains_why_not(api: Api) -> None:
    admin = as_admin(api)
    topic(api, admin, "Git")

    api.form("/admin/topics", {"name": "Git"})

    assert flashes(api.client.get("/admin/topics")) == ["A topic with that name exists."]
    assert topic_rows(api) == {"Git": "active"}


def test_adding_a_topic_without_a_name_explains_why_not(api: Api) -> None:
    as_admin(api)

    api.form("/admin/topics", {"name": "  "})

    assert flashes(api.client.get("/admin/topics")) == ["Topic name must be 1-80 characters."]
    assert topic_rows(api) == {}


def test_admin_edits_a_topic(api: Api) -> None:
    admin = as_admin(api)
    git = topic(api, admin, "Git")
    editor = api.client.get(f"/admin/topics/{git.id}/edit")
    assert 'value="Git"' in editor.text

    response = api.form(
        f"/admin/topics/{git.id}/edit", {"name": "Git & GitHub", "description": "PRs"}
    )

    assert response.headers["location"] == "/admin/topics"
    page = api.client.get("/admin/topics")
    assert flashes(page) == ["Topic “Git & GitHub” saved."]
    assert topic_rows(api) == {"Git & GitHub": "active"}


def test_a_bad_edit_returns_to_the_editor_with_the_reason(api: Api) -> None:
    admin = as_admin(api)
    git = topic(api, admin, "Git")
    topic(api, admin, "Jinja2")

    response = api.form(f"/admin/topics/{git.id}/edit", {"name": "Jinja2"})

    assert response.headers["location"] == f"/admin/topics/{git.id}/edit"
    assert flashes(api.client.get(response.headers["location"])) == [
        "A topic with that name exists."
    ]
    assert topic_rows(api) == {"Git": "active", "Jinja2": "active"}


def test_admin_deactivates_and_reactivates_a_topic(api: Api) -> None:
    admin = as_admin(api)
    git = topic(api, admin, "Git")
    user = api.user()

    api.form(f"/admin/topics/{git.id}/active", {"active": "false"})
    assert flashes(api.client.get("/admin/topics")) == ["Topic “Git” deactivated."]
    assert topic_rows(api) == {"Git": "inactive"}
    assert api.client.get("/api/topics", headers=api.auth(user)).json() == []

    api.form(f"/admin/topics/{git.id}/active", {"active": "true"})
    assert flashes(api.client.get("/admin/topics")) == ["Topic “Git” reactivated."]
    assert topic_rows(api) == {"Git": "active"}


def test_delete_asks_for_confirmation_first(api: Api) -> None:
    admin = as_admin(api)
    git = topic(api, admin, "Git")

    page = api.client.get(f"/admin/topics/{git.id}/delete")

    assert page.status_code == 200
    assert "Delete the topic “Git”?" in page.text
    assert f'action="/admin/topics/{git.id}/delete"' in page.text
    assert topic_rows(api) == {"Git": "active"}  # asking deletes nothing

    response = api.form(f"/admin/topics/{git.id}/delete")

    assert response.headers["location"] == "/admin/topics"
    assert flashes(api.client.get("/admin/topics")) == ["Topic deleted."]
    assert topic_rows(api) == {}


def test_a_topic_in_use_offers_no_delete_button(api: Api) -> None:
    admin = as_admin(api)
    git = topic(api, admin, "Git")
    api.call(make_conversation, api.ctx, admin, git)

    page = api.client.get(f"/admin/topics/{git.id}/delete")
    response = api.form(f"/admin/topics/{git.id}/delete")

    assert "cannot be deleted because it is in use" in page.text
    assert "Yes, delete" not in page.text
    assert response.headers["location"] == "/admin/topics"
    assert flashes(api.client.get("/admin/topics")) == [
        "This topic has conversations; deactivate it instead."
    ]
    assert topic_rows(api) == {"Git": "active"}


def test_unknown_topic_pages_are_404(api: Api) -> None:
    as_admin(api)

    assert api.client.get("/admin/topics/424242/edit").status_code == 404
    assert api.client.get("/admin/topics/424242/delete").status_code == 404
    assert api.form("/admin/topics/424242/delete").status_code == 404
    assert api.form("/admin/topics/424242/edit", {"name": "x"}).status_code == 404
    assert api.form("/admin/topics/424242/active", {"active": "false"}).status_code == 404


@pytest.mark.parametrize("topic_id", ["0", "-1", "2147483648", "9" * 30, "abc"])
def test_out_of_range_topic_ids_give_a_page_not_an_error(api: Api, topic_id: str) -> None:
    as_admin(api)

    page = api.client.get(f"/admin/topics/{topic_id}/edit")

    assert page.status_code == 422
    assert page.headers["content-type"].startswith("text/html")


# -- users ----------------------------------------------------------------------------------


def user_rows(page: httpx.Response) -> list[str]:
    return re.findall(r'<tr data-user="([^"]+)">', page.text)


def test_admin_lists_and_searches_users(api: Api) -> None:
    admin = as_admin(api)
    alice, bob = api.user(username="alice_w"), api.user(username="bob_k")

    everyone = api.client.get("/admin/users")
    found = api.client.get("/admin/users", params={"q": "ALI"})

    assert user_rows(everyone) == [admin.username, alice.username, bob.username]
    assert "3 accounts." in everyone.text
    assert user_rows(found) == ["alice_w"]
    assert "1 account." in found.text
    assert 'value="ALI"' in found.text


def test_user_list_is_paged(api: Api) -> None:
    admin = as_admin(api)
    users = [api.user() for _ in range(50)]

    first = api.client.get("/admin/users")
    second = api.client.get("/admin/users", params={"page": 2})
    silly = api.client.get("/admin/users", params={"page": -3})

    assert user_rows(first) == [admin.username] + [u.username for u in users[:49]]
    assert user_rows(second) == [users[49].username]
    assert "Page 1 of 2" in first.text
    assert 'href="?q=&page=2">Next</a>' in first.text
    assert "Page 2 of 2" in second.text
    assert user_rows(silly) == user_rows(first)


def test_admin_changes_a_users_role(api: Api) -> None:
    as_admin(api)
    user = api.user()

    response = api.form(f"/admin/users/{user.id}/role", {"role": "moderator"})

    assert response.headers["location"] == f"/admin/users/{user.id}"
    page = api.client.get(f"/admin/users/{user.id}")
    assert flashes(page) == [f"{user.username} is now moderator."]
    assert api.fresh(user).role is Role.moderator


def test_an_unknown_role_is_explained(api: Api) -> None:
    as_admin(api)
    user = api.user()

    api.form(f"/admin/users/{user.id}/role", {"role": "superuser"})

    assert flashes(api.client.get(f"/admin/users/{user.id}")) == ["Unknown role."]
    assert api.fresh(user).role is Role.user


def test_a_non_admin_posting_an_unknown_role_is_forbidden(api: Api) -> None:
    actor, target = api.user(Role.moderator), api.user()
    api.browse_as(actor)

    response = api.form(f"/admin/users/{target.id}/role", {"role": "superuser"})

    assert response.status_code == 403


def test_admin_cannot_change_their_own_role_on_the_page(api: Api) -> None:
    admin = as_admin(api)
    page = api.client.get(f"/admin/users/{admin.id}")
    assert "You cannot change your own role." in page.text
    assert '<select name="role" disabled>' in page.text

    api.form(f"/admin/users/{admin.id}/role", {"role": "user"})

    assert flashes(api.client.get(f"/admin/users/{admin.id}")) == [
        "You cannot change your own role."
    ]
    assert api.fresh(admin).role is Role.admin


def test_admin_deactivates_and_reactivates_a_user(api: Api) -> None:
    as_admin(api)
    user = api.user()
    user_session = api.login(user.username)

    api.form(f"/admin/users/{user.id}/active", {"active": "false"})
    page = api.client.get(f"/admin/users/{user.id}")
    assert flashes(page) == [f"{user.username} deactivated."]
    assert "deactivated" in page.text
    assert ">Reactivate</button>" in page.text
    assert api.client.get("/api/me", headers=user_session).status_code == 401
    assert (
        api.client.post(
            "/api/auth/token", json={"username": user.username, "password": PASSWORD}
        ).status_code
        == 401
    )

    api.form(f"/admin/users/{user.id}/active", {"active": "true"})
    assert flashes(api.client.get(f"/admin/users/{user.id}")) == [f"{user.username} reactivated."]
    assert api.login(user.username)


def test_admin_cannot_deactivate_themselves_on_the_page(api: Api) -> None:
    admin = as_admin(api)

    api.form(f"/admin/users/{admin.id}/active", {"active": "false"})

    assert flashes(api.client.get(f"/admin/users/{admin.id}")) == [
        "You cannot deactivate yourself."
    ]
    assert api.fresh(admin).is_active


def test_admin_resets_a_password(api: Api) -> None:
    as_admin(api)
    user = api.user()
    user_session = api.login(user.username)

    api.form(f"/admin/users/{user.id}/password", {"password": NEW_PASSWORD})

    assert flashes(api.client.get(f"/admin/users/{user.id}")) == [
        f"New password set for {user.username}; their sessions ended."
    ]
    assert api.client.get("/api/me", headers=user_session).status_code == 401
    assert api.login(user.username, NEW_PASSWORD)


def test_a_short_reset_password_is_explained(api: Api) -> None:
    as_admin(api)
    user = api.user()

    api.form(f"/admin/users/{user.id}/password", {"password": "short"})

    assert flashes(api.client.get(f"/admin/users/{user.id}")) == [
        "Password must be 8-128 characters long."
    ]
    assert api.login(user.username, PASSWORD)


def test_unknown_user_page_is_404(api: Api) -> None:
    as_admin(api)

    assert api.client.get("/admin/users/424242").status_code == 404
    assert api.form("/admin/users/424242/role", {"role": "user"}).status_code == 404
    assert api.form("/admin/users/424242/active", {"active": "false"}).status_code == 404
    assert api.form("/admin/users/424242/password", {"password": NEW_PASSWORD}).status_code == 404


# -- features editor --------------------------------------------------------------------------


def test_features_editor_shows_the_current_texts(api: Api) -> None:
    as_admin(api)
    api.client.put(
        "/api/features/annotator",
        json={"body": "Label <things>"},
        headers=api.auth(api.user(Role.admin)),
    )

    page = api.client.get("/admin/features")

    assert (
        '<textarea name="text_annotator" rows="5" maxlength="10000">Label &lt;things&gt;</textarea>'
        in (page.text)
    )


def test_an_over_long_features_text_is_explained(api: Api) -> None:
    as_admin(api)

    response = api.form("/admin/features", {"text_user": "x" * 10_001})

    assert response.headers["location"] == "/admin/features"
    assert flashes(api.client.get("/admin/features")) == [
        "The text must be at most 10000 characters."
    ]


# -- who may see them -------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.user, Role.moderator, Role.annotator])
@pytest.mark.parametrize("path", ["/admin/topics", "/admin/users", "/admin/features"])
def test_admin_pages_are_forbidden_to_other_roles(api: Api, role: Role, path: str) -> None:
    api.browse_as(api.user(role))

    page = api.client.get(path)

    assert page.status_code == 403
    assert "You may not see this page" in page.text
