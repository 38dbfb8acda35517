from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from chatforge.app import create_app
from chatforge.context import AppContext
from chatforge.settings import Settings, load_settings
from chatforge.store import migrate
from chatforge.store.models import Role, User
from tests.factories import PASSWORD, make_user, unique_name
from tests.servers import IN_CI, SECRET


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Under CI nothing may be skipped: a skip there would hide a missing system package.
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if IN_CI and reporter is not None and reporter.stats.get("skipped"):
        reporter.write_line("CI=true: skipped tests are not allowed", red=True)
        session.exitstatus = 1


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database, made once and copied for each test."""
    path = tmp_path_factory.mktemp("template") / "chatforge.db"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
def settings(tmp_path: Path, migrated_template: Path) -> Settings:
    config = load_settings(
        data_dir=tmp_path / "data", secret_key=SECRET, public_url="http://testserver"
    )
    config.check()
    shutil.copyfile(migrated_template, config.data_dir / "chatforge.db")
    return config


class Api:
    """A TestClient with helpers to create users and act as them."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    @property
    def ctx(self) -> AppContext:
        ctx: AppContext = self.client.app.state.ctx  # type: ignore[attr-defined]
        return ctx

    def user(self, role: Role | str = Role.user, username: str | None = None) -> User:
        return self.client.portal.call(make_user, self.ctx, role, username)  # type: ignore[union-attr]

    def token(self, user: User) -> str:
        return self.ctx.tokens.issue(user.id, user.token_version)

    def auth(self, user: User) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user)}"}

    def login(self, username: str, password: str = PASSWORD) -> dict[str, str]:
        response = self.client.post(
            "/api/auth/token", json={"username": username, "password": password}
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), base_url="http://testserver") as test_client:
        yield test_client


@pytest.fixture
def api(client: TestClient) -> Api:
    return Api(client)


@pytest.fixture
def name() -> str:
    return unique_name()
