"""``/api/topics``: listing for everyone, management for admins."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from chatforge.store.models import AuditRecord, Role, Topic, User
from tests.conftest import Api
from tests.factories import make_conversation, make_topic


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    assert isinstance(body["detail"], str)
    assert body["detail"]


def topic(api: Api, admin: User, name: str | None = None, description: str = "") -> Topic:
    return api.call(make_topic, api.ctx, admin, name, description)


def stored_names(api: Api) -> list[str]:
    return [t.name for t in api.call(lambda: api.ctx.topics.list(include_inactive=True))]


def test_admin_creates_a_topic(api: Api) -> None:
    admin = api.user(Role.admin)

    response = api.client.post(
        "/api/topics",
        json={"name": "  Git   basics ", "description": " Branches and merges "},
        headers=api.auth(admin),
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body == {
        "id": body["id"],
        "name": "Git basics",
        "description": "Branches and merges",
        "is_active": True,
    }
    assert stored_names(api) == ["Git basics"]


def test_topic_names_are_unique(api: Api) -> None:
    admin = api.user(Role.admin)
    headers = api.auth(admin)
    api.client.post("/api/topics", json={"name": "Git"}, headers=headers)

    response = api.client.post("/api/topics", json={"name": "Git"}, headers=headers)

    assert_error(response, 409, "topic_exists")
    assert stored_names(api) == ["Git"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": ""}, "invalid"),
        ({"name": "n" * 81}, "invalid"),
        ({"name": "ok", "description": "d" * 501}, "invalid"),
        ({}, "invalid"),
        ({"name": "ok", "active": False}, "invalid"),
        ({"name": "   "}, "invalid_topic_name"),
    ],
)
def test_topic_create_rejects_bad_fields(api: Api, body: dict[str, object], code: str) -> None:
    admin = api.user(Role.admin)

    assert_error(api.client.post("/api/topics", json=body, headers=api.auth(admin)), 422, code)
    assert stored_names(api) == []


@pytest.mark.parametrize("role", [Role.user, Role.moderator, Role.annotator])
def test_only_admins_manage_topics(api: Api, role: Role) -> None:
    admin, actor = api.user(Role.admin), api.user(role)
    existing = topic(api, admin, "Git")
    headers = api.auth(actor)

    assert_error(
        api.client.post("/api/topics", json={"name": "New"}, headers=headers), 403, "forbidden"
    )
    assert_error(
        api.client.patch(f"/api/topics/{existing.id}", json={"name": "X"}, headers=headers),
        403,
        "forbidden",
    )
    assert_error(api.client.delete(f"/api/topics/{existing.id}", headers=headers), 403, "forbidden")
    assert stored_names(api) == ["Git"]


def test_everyone_logged_in_lists_active_topics_by_name(api: Api) -> None:
    admin = api.user(Role.admin)
    topic(api, admin, "Wireframe")
    topic(api, admin, "Git", "Git commands")
    hidden = topic(api, admin, "Old")
    api.client.patch(f"/api/topics/{hidden.id}", json={"active": False}, headers=api.auth(admin))

    for role in Role:
        response = api.client.get("/api/topics", headers=api.auth(api.user(role)))
        assert response.status_code == 200
        assert [t["name"] for t in response.json()] == ["Git", "Wireframe"]
    assert response.json()[0]["description"] == "Git commands"


def test_admins_may_ask_for_inactive_topics_too(api: Api) -> None:
    admin, user = api.user(Role.admin), api.user()
    topic(api, admin, "Git")
    hidden = topic(api, admin, "Old")
    api.client.patch(f"/api/topics/{hidden.id}", json={"active": False}, headers=api.auth(admin))

    response = api.client.get(
        "/api/topics", params={"include_inactive": "true"}, headers=api.auth(admin)
    )

    assert [(t["name"], t["is_active"]) for t in response.json()] == [
        ("Git", True),
        ("Old", False),
    ]
    assert_error(
        api.client.get("/api/topics", params={"include_inactive": "true"}, headers=api.auth(user)),
        403,
        "forbidden",
    )


def test_listing_topics_needs_a_login(api: Api) -> None:
    assert_error(api.client.get("/api/topics"), 401, "not_authenticated")


def test_admin_renames_describes_and_reactivates_a_topic(api: Api) -> None:
    admin = api.user(Role.admin)
    headers = api.auth(admin)
    git = topic(api, admin, "Git")

    renamed = api.client.patch(
        f"/api/topics/{git.id}", json={"name": "Git and GitHub"}, headers=headers
    )
    described = api.client.patch(
        f"/api/topics/{git.id}", json={"description": "Pull requests"}, headers=headers
    )
    off = api.client.patch(f"/api/topics/{git.id}", json={"active": False}, headers=headers)
    on = api.client.patch(f"/api/topics/{git.id}", json={"active": True}, headers=headers)

    assert renamed.json()["name"] == "Git and GitHub"
    assert described.json() == {
        "id": git.id,
        "name": "Git and GitHub",
        "description": "Pull requests",
        "is_active": True,
    }
    assert off.json()["is_active"] is False
    assert on.json()["is_active"] is True

    async def actions() -> list[str]:
        async with api.ctx.db.read() as session:
            rows = await session.scalars(
                select(AuditRecord.action)
                .where(AuditRecord.target_type == "topic", AuditRecord.target_id == git.id)
                .order_by(AuditRecord.id)
            )
            return list(rows)

    assert api.call(actions) == ["topic.create"] + ["topic.update"] * 4


def test_an_empty_patch_changes_nothing(api: Api) -> None:
    admin = api.user(Role.admin)
    git = topic(api, admin, "Git", "Git commands")

    response = api.client.patch(f"/api/topics/{git.id}", json={}, headers=api.auth(admin))

    assert response.status_code == 200
    assert response.json()["description"] == "Git commands"


def test_renaming_onto_another_topics_name_is_a_conflict(api: Api) -> None:
    admin = api.user(Role.admin)
    topic(api, admin, "Git")
    other = topic(api, admin, "Jinja2")

    response = api.client.patch(
        f"/api/topics/{other.id}", json={"name": "Git"}, headers=api.auth(admin)
    )

    assert_error(response, 409, "topic_exists")
    assert stored_names(api) == ["Git", "Jinja2"]


def test_renaming_to_its_own_name_is_fine(api: Api) -> None:
    admin = api.user(Role.admin)
    git = topic(api, admin, "Git")

    response = api.client.patch(
        f"/api/topics/{git.id}", json={"name": " Git "}, headers=api.auth(admin)
    )

    assert response.status_code == 200
    assert response.json()["name"] == "Git"


def test_admin_deletes_an_unused_topic(api: Api) -> None:
    admin = api.user(Role.admin)
    git = topic(api, admin, "Git")
    topic(api, admin, "Jinja2")

    response = api.client.delete(f"/api/topics/{git.id}", headers=api.auth(admin))

    assert response.status_code == 204
    assert response.content == b""
    assert stored_names(api) == ["Jinja2"]
    assert_error(
        api.client.delete(f"/api/topics/{git.id}", headers=api.auth(admin)),
        404,
        "topic_not_found",
    )


def test_a_topic_in_use_cannot_be_deleted_only_deactivated(api: Api) -> None:
    admin, user = api.user(Role.admin), api.user()
    git = topic(api, admin, "Git")
    api.call(make_conversation, api.ctx, user, git)
    headers = api.auth(admin)

    response = api.client.delete(f"/api/topics/{git.id}", headers=headers)

    assert_error(response, 409, "topic_in_use")
    assert stored_names(api) == ["Git"]
    deactivated = api.client.patch(f"/api/topics/{git.id}", json={"active": False}, headers=headers)
    assert deactivated.json()["is_active"] is False
    assert api.client.get("/api/topics", headers=api.auth(user)).json() == []


def test_unknown_topic_is_not_found(api: Api) -> None:
    headers = api.auth(api.user(Role.admin))

    assert_error(
        api.client.patch("/api/topics/424242", json={"name": "x"}, headers=headers),
        404,
        "topic_not_found",
    )
    assert_error(api.client.delete("/api/topics/424242", headers=headers), 404, "topic_not_found")


@pytest.mark.parametrize("topic_id", ["0", "-5", "2147483648", "1" * 40, "abc"])
def test_out_of_range_topic_ids_are_invalid_not_errors(api: Api, topic_id: str) -> None:
    headers = api.auth(api.user(Role.admin))

    assert_error(
        api.client.patch(f"/api/topics/{topic_id}", json={"name": "x"}, headers=headers),
        422,
        "invalid",
    )
    assert_error(api.client.delete(f"/api/topics/{topic_id}", headers=headers), 422, "invalid")


@pytest.mark.parametrize(
    "body", [{"name": ""}, {"name": "n" * 81}, {"description": "d" * 501}, {"active": "maybe"}]
)
def test_topic_patch_rejects_bad_fields(api: Api, body: dict[str, object]) -> None:
    admin = api.user(Role.admin)
    git = topic(api, admin, "Git")

    response = api.client.patch(f"/api/topics/{git.id}", json=body, headers=api.auth(admin))

    assert_error(response, 422, "invalid")
    assert stored_names(api) == ["Git"]
