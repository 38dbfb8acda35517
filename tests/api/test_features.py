"""``/api/features``: the per-role text of the features page."""

from __future__ import annotations

import pytest

from chatforge.services.features import DEFAULT_TEXTS
from chatforge.store.models import Role
from tests.conftest import Api


def test_features_are_public_and_cover_every_role(api: Api) -> None:
    response = api.client.get("/api/features")

    assert response.status_code == 200
    assert response.json() == {"roles": {role.value: DEFAULT_TEXTS[role] for role in Role}}


def test_admin_replaces_the_text_of_one_role(api: Api) -> None:
    admin = api.user(Role.admin)

    response = api.client.put(
        "/api/features/moderator", json={"body": "  Answer people.\n"}, headers=api.auth(admin)
    )

    assert response.status_code == 204
    roles = api.client.get("/api/features").json()["roles"]
    assert roles["moderator"] == "Answer people."
    assert roles["user"] == DEFAULT_TEXTS[Role.user]


def test_a_second_edit_replaces_the_first(api: Api) -> None:
    headers = api.auth(api.user(Role.admin))
    api.client.put("/api/features/user", json={"body": "first"}, headers=headers)

    api.client.put("/api/features/user", json={"body": "second"}, headers=headers)

    assert api.client.get("/api/features").json()["roles"]["user"] == "second"


@pytest.mark.parametrize("role", [Role.user, Role.moderator, Role.annotator])
def test_only_admins_edit_features(api: Api, role: Role) -> None:
    response = api.client.put(
        "/api/features/user", json={"body": "hacked"}, headers=api.auth(api.user(role))
    )

    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert api.client.get("/api/features").json()["roles"]["user"] == DEFAULT_TEXTS[Role.user]


def test_anonymous_cannot_edit_features(api: Api) -> None:
    response = api.client.put("/api/features/user", json={"body": "hacked"})

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/features/superuser", {"body": "x"}),
        ("/api/features/user", {"body": "x" * 10_001}),
        ("/api/features/user", {}),
        ("/api/features/user", {"body": "x", "role": "admin"}),
    ],
)
def test_feature_edit_rejects_bad_input(api: Api, path: str, body: dict[str, str]) -> None:
    response = api.client.put(path, json=body, headers=api.auth(api.user(Role.admin)))

    assert response.status_code == 422
    assert response.json()["code"] == "invalid"
    assert response.json()["detail"]
