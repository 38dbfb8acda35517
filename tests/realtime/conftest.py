from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chatforge.context import AppContext
from chatforge.store.models import Role, User
from tests.factories import make_user, with_context
from tests.servers import LiveServer, chatforge_server

SERVER_ENV = {
    "CHATFORGE_REPLAY_CAP": "20",
    "CHATFORGE_TYPING_TTL_SECONDS": "1",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with chatforge_server(tmp_path_factory.mktemp("realtime"), **SERVER_ENV) as live:
        yield live


@dataclass
class People:
    user: User
    other_user: User
    moderator: User
    other_moderator: User
    annotator: User
    topic_id: int
    tokens: dict[int, str]

    def token(self, user: User) -> str:
        return self.tokens[user.id]

    def auth(self, user: User) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user.id]}"}


def data_dir(server: LiveServer) -> Path:
    return Path(server.env["CHATFORGE_DATA_DIR"])


@pytest.fixture
def people(server: LiveServer) -> People:
    """Fresh accounts of each role and a topic, made in the live server's database."""

    async def create(ctx: AppContext) -> People:
        users = [
            await make_user(ctx, role)
            for role in (Role.user, Role.user, Role.moderator, Role.moderator, Role.annotator)
        ]
        admin = await make_user(ctx, Role.admin)
        topic = await ctx.topics.create(admin, name=f"Topic for {users[0].username}")
        tokens = {u.id: ctx.tokens.issue(u.id, u.token_version) for u in users}
        return People(*users, topic_id=topic.id, tokens=tokens)

    return with_context(data_dir(server), create, secret_key=server.env["CHATFORGE_SECRET_KEY"])
