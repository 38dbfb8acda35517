"""Smoke suite on PostgreSQL: migrations, and the main account and topic flows through the app."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url

from chatforge.app import create_app
from chatforge.settings import load_settings
from chatforge.store import migrate
from chatforge.store.models import Role
from chatforge.store.types import utcnow
from tests.conftest import Api
from tests.corpus import Said, finished_conversation
from tests.factories import PASSWORD, make_conversation, make_topic, unique_name
from tests.servers import SECRET
from tests.store.test_migrations import check_round_trip

pytestmark = pytest.mark.postgres


def create_database(url: str, name: str) -> str:
    """A new empty database on the server of ``url``; returns its URL."""

    async def run() -> None:
        parts = make_url(url)
        connection = await asyncpg.connect(
            host=parts.host, port=parts.port, user=parts.username, database=parts.database
        )
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(run())
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def pg_database(postgres_url: str) -> str:
    url = create_database(postgres_url, "chatforge_app")
    migrate.upgrade(url)
    return url


@pytest.fixture
def pg_api(pg_database: str, tmp_path: Path) -> Iterator[Api]:
    settings = load_settings(
        data_dir=tmp_path,
        database_url=pg_database,
        secret_key=SECRET,
        public_url="http://testserver",
    )
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        yield Api(client)


def test_migrations_go_up_down_and_up_to_the_models_schema(postgres_url: str) -> None:
    check_round_trip(create_database(postgres_url, "chatforge_migrations"))


def test_the_app_really_runs_on_postgresql(pg_api: Api) -> None:
    async def server_version() -> str:
        async with pg_api.ctx.db.read() as session:
            return str(await session.scalar(text("SELECT version()")))

    assert pg_api.ctx.settings.resolved_database_url.startswith("postgresql+asyncpg://")
    assert pg_api.call(server_version).startswith("PostgreSQL")
    assert pg_api.client.get("/healthz").json() == {
        "status": "ok",
        "database": "ok",
        "broker": "memory",
    }


def test_register_token_and_profile(pg_api: Api) -> None:
    name = unique_name("PgUser")
    before = datetime.now(UTC)

    registered = pg_api.client.post(
        "/api/auth/register", json={"username": name, "password": PASSWORD, "display_name": "Pg"}
    )
    duplicate = pg_api.client.post(
        "/api/auth/register", json={"username": name.lower(), "password": PASSWORD}
    )
    headers = pg_api.login(name)
    me = pg_api.client.get("/api/me", headers=headers)
    renamed = pg_api.client.patch(
        "/api/me", json={"display_name": "Postgres Person"}, headers=headers
    )
    changed = pg_api.client.post(
        "/api/me/password",
        json={"current_password": PASSWORD, "new_password": "new pg password"},
        headers=headers,
    )

    assert registered.status_code == 201, registered.text
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "username_taken"
    assert me.json()["username"] == name.lower()
    created = datetime.fromisoformat(me.json()["created_at"])
    assert created.utcoffset() is not None
    assert before.replace(microsecond=0) <= created <= datetime.now(UTC)
    assert renamed.json()["display_name"] == "Postgres Person"
    assert changed.status_code == 204
    assert pg_api.client.get("/api/me", headers=headers).status_code == 401
    assert pg_api.login(name, "new pg password")


def test_topic_create_list_update_delete(pg_api: Api) -> None:
    admin = pg_api.user(Role.admin)
    user = pg_api.user()
    headers = pg_api.auth(admin)
    name = unique_name("PG topic ")

    created = pg_api.client.post(
        "/api/topics", json={"name": name, "description": "on PostgreSQL"}, headers=headers
    )
    topic_id = created.json()["id"]
    duplicate = pg_api.client.post("/api/topics", json={"name": name}, headers=headers)
    listed = pg_api.client.get("/api/topics", headers=pg_api.auth(user))
    updated = pg_api.client.patch(
        f"/api/topics/{topic_id}", json={"name": f"{name}!", "active": False}, headers=headers
    )
    hidden = pg_api.client.get("/api/topics", headers=pg_api.auth(user))
    deleted = pg_api.client.delete(f"/api/topics/{topic_id}", headers=headers)

    assert created.status_code == 201, created.text
    assert duplicate.status_code == 409
    assert name in [t["name"] for t in listed.json()]
    assert updated.json() == {
        "id": topic_id,
        "name": f"{name}!",
        "description": "on PostgreSQL",
        "is_active": False,
    }
    assert f"{name}!" not in [t["name"] for t in hidden.json()]
    assert deleted.status_code == 204
    assert pg_api.client.delete(f"/api/topics/{topic_id}", headers=headers).status_code == 404


def test_a_topic_in_use_cannot_be_deleted(pg_api: Api) -> None:
    admin, user = pg_api.user(Role.admin), pg_api.user()
    topic = pg_api.call(make_topic, pg_api.ctx, admin, None, "")
    pg_api.call(make_conversation, pg_api.ctx, user, topic)

    response = pg_api.client.delete(f"/api/topics/{topic.id}", headers=pg_api.auth(admin))

    assert response.status_code == 409
    assert response.json()["code"] == "topic_in_use"


def test_admin_changes_roles_and_deactivates(pg_api: Api) -> None:
    admin, user = pg_api.user(Role.admin), pg_api.user()
    user_headers = pg_api.login(user.username)
    admin_headers = pg_api.auth(admin)

    promoted = pg_api.client.patch(
        f"/api/users/{user.id}", json={"role": "annotator"}, headers=admin_headers
    )
    own = pg_api.client.patch(
        f"/api/users/{admin.id}", json={"role": "user"}, headers=admin_headers
    )
    me = pg_api.client.get("/api/me", headers=user_headers)
    deactivated = pg_api.client.patch(
        f"/api/users/{user.id}", json={"active": False}, headers=admin_headers
    )

    assert promoted.json()["role"] == "annotator"
    assert own.status_code == 403
    assert me.json()["role"] == "annotator"
    assert deactivated.json()["is_active"] is False
    assert pg_api.client.get("/api/me", headers=user_headers).status_code == 401


def test_user_search_ignores_case(pg_api: Api) -> None:
    admin = pg_api.user(Role.admin)
    user = pg_api.user()
    marker = unique_name("Zebra")
    pg_api.client.patch(
        "/api/me", json={"display_name": f"{marker} Person"}, headers=pg_api.auth(user)
    )

    found = pg_api.client.get(
        "/api/users", params={"q": marker.lower()}, headers=pg_api.auth(admin)
    ).json()

    assert [u["id"] for u in found["items"]] == [user.id]
    assert found["total"] == 1


def test_features_text_round_trip(pg_api: Api) -> None:
    admin = pg_api.user(Role.admin)

    for body in ("first text", "second text"):
        response = pg_api.client.put(
            "/api/features/annotator", json={"body": body}, headers=pg_api.auth(admin)
        )
        assert response.status_code == 204

    assert pg_api.client.get("/api/features").json()["roles"]["annotator"] == "second text"


def test_annotation_search_runs_on_postgresql_full_text(pg_api: Api) -> None:
    """N1 on PostgreSQL: tsvector search, corrections searchable, hostile input harmless."""
    user, moderator = pg_api.user(Role.user), pg_api.user(Role.moderator)
    annotator = pg_api.user(Role.annotator)
    rebase = pg_api.call(
        finished_conversation,
        pg_api.ctx,
        user,
        [Said(user, "How do I rebase my branch?"), Said(moderator, "Run git rebase main.")],
    )
    window = pg_api.call(
        finished_conversation,
        pg_api.ctx,
        user,
        [Said(user, "What is a window function?"), Said(moderator, "It ranks rows.")],
    )

    def found(query: str) -> list[int]:
        response = pg_api.client.get(
            "/api/annotation/conversations", params={"q": query}, headers=pg_api.auth(annotator)
        )
        assert response.status_code == 200, response.text
        return [item["conversation"]["id"] for item in response.json()["items"]]

    assert found("rebase") == [rebase.id]
    assert found("REBASE") == [rebase.id]  # words match whatever their case, as on SQLite
    assert found("window function") == [window.id]  # every word, in one message
    assert found("kubernetes") == []
    for hostile in ['"', "NEAR(", "rebase & | !", "(((", "a' OR '1'='1", "\\x00"]:
        response = pg_api.client.get(
            "/api/annotation/conversations", params={"q": hostile}, headers=pg_api.auth(annotator)
        )
        assert response.status_code in {200, 400}, (hostile, response.text)
    corrected = pg_api.client.patch(
        f"/api/messages/{window.message_ids[1]}/correction",
        json={"text": "It computes over a partition of rows."},
        headers=pg_api.auth(annotator),
    )
    assert corrected.status_code == 200, corrected.text
    assert found("partition") == [window.id]


def test_a_quiet_bot_chat_ends_and_is_found_on_postgresql(pg_api: Api) -> None:
    user, annotator = pg_api.user(Role.user), pg_api.user(Role.annotator)
    reply = pg_api.call(pg_api.ctx.web_chat.send, user, "zanzibar python easy")
    assert reply.conversation_id is not None

    def found() -> list[int]:
        response = pg_api.client.get(
            "/api/annotation/conversations",
            params={"q": "zanzibar", "kind": "bot"},
            headers=pg_api.auth(annotator),
        )
        assert response.status_code == 200, response.text
        return [item["conversation"]["id"] for item in response.json()["items"]]

    assert found() == []  # open chats are not the annotators' yet
    idle = timedelta(minutes=pg_api.ctx.settings.bot_chat_idle_minutes + 1)
    ended = pg_api.call(pg_api.ctx.bot_chats.end_idle, utcnow() + idle)
    assert reply.conversation_id in ended
    assert found() == [reply.conversation_id]
