from __future__ import annotations

import functools
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi.testclient import TestClient
from pwdlib.hashers.argon2 import Argon2Hasher

from chatforge.api.deps import SESSION_COOKIE
from chatforge.app import create_app
from chatforge.auth import passwords
from chatforge.context import AppContext, build_context
from chatforge.settings import Settings, load_settings
from chatforge.store import migrate
from chatforge.store.database import Database
from chatforge.store.models import Role, User
from tests.factories import PASSWORD, make_user, unique_name
from tests.servers import IN_CI, SECRET, postgres_server

T = TypeVar("T")
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Under CI nothing may be skipped: a skip there would hide a missing system package.
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if IN_CI and reporter is not None and reporter.stats.get("skipped"):
        reporter.write_line("CI=true: skipped tests are not allowed", red=True)
        session.exitstatus = 1


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id with the smallest cost in-process: production cost makes each hash ~0.2 s here.

    Subprocess servers (CLI, browser tests) keep the production parameters.
    """
    cheap = functools.partial(Argon2Hasher, time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(passwords, "Argon2Hasher", cheap)


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite database at the latest schema, migrated once and copied for each test."""
    data_dir = tmp_path_factory.mktemp("template")
    config = load_settings(data_dir=data_dir, secret_key=SECRET)
    migrate.upgrade(config.resolved_database_url)
    return data_dir / "chatforge.db"


@pytest.fixture
def settings(tmp_path: Path, migrated_database: Path) -> Settings:
    config = load_settings(
        data_dir=tmp_path / "data", secret_key=SECRET, public_url="http://testserver"
    )
    config.check()
    database_file = (config.data_dir / "chatforge.db").resolve()
    if config.resolved_database_url == f"sqlite+aiosqlite:///{database_file}":
        shutil.copyfile(migrated_database, database_file)
    else:  # CHATFORGE_DATABASE_URL names another database
        migrate.upgrade(config.resolved_database_url)
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

    def call(self, work: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run a coroutine function of the app (a service call) on the app's event loop."""
        return self.client.portal.call(work, *args)  # type: ignore[union-attr]

    def fresh(self, user: User) -> User:
        """``user`` as stored now (role, token version, active flag)."""
        return self.call(self.ctx.accounts.get_user, user, user.id)

    # -- pages ---------------------------------------------------------------------------

    def browse_as(self, user: User | None) -> None:
        """Make the client's later page requests carry ``user``'s session cookie (or none)."""
        self.client.cookies.delete(SESSION_COOKIE)
        if user is not None:
            self.client.cookies.set(SESSION_COOKIE, self.token(self.fresh(user)))

    def csrf(self) -> str:
        """The CSRF token of a page form (its cookie lands in the client's jar)."""
        page = self.client.get("/register")
        match = CSRF_FIELD.search(page.text)
        assert match is not None, page.text
        return match.group(1)

    def form(self, path: str, data: dict[str, str] | None = None) -> httpx.Response:
        """Post a page form the way a browser would: with the CSRF token, redirects not followed."""
        fields = {**(data or {}), "csrf_token": self.csrf()}
        return self.client.post(path, data=fields, follow_redirects=False)


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throw-away PostgreSQL server for the session: an asyncpg URL to an empty database."""
    with postgres_server(tmp_path_factory.mktemp("postgres")) as url:
        yield url


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    """The database handle alone, on a fresh migrated SQLite file."""
    database = Database(settings.resolved_database_url)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def ctx(settings: Settings) -> AsyncIterator[AppContext]:
    """The app's services on a fresh migrated SQLite database, without HTTP in between."""
    context = build_context(settings)
    try:
        yield context
    finally:
        await context.close()


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
