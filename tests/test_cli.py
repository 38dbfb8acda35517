"""The ``chatforge`` command line, run as a real subprocess."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from chatforge.app import create_app
from chatforge.context import AppContext
from chatforge.demo import DEMO_ACCOUNTS, DEMO_TOPICS
from chatforge.settings import load_settings
from chatforge.store.models import Topic, User
from tests.factories import with_context
from tests.servers import SECRET, child_env

PASSWORD = "cli password 123"


def chatforge(data_dir: Path, *args: str, secret: str = SECRET) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatforge", *args],
        env=child_env(CHATFORGE_DATA_DIR=str(data_dir), CHATFORGE_SECRET_KEY=secret),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def token_response(data_dir: Path, username: str, password: str) -> tuple[int, str | None]:
    """Log in through the real token endpoint of an app on ``data_dir``: (status, role)."""
    settings = load_settings(data_dir=data_dir, secret_key=SECRET)
    with TestClient(create_app(settings)) as client:
        response = client.post("/api/auth/token", json={"username": username, "password": password})
        if response.status_code != 200:
            return response.status_code, None
        me = client.get(
            "/api/me", headers={"Authorization": f"Bearer {response.json()['access_token']}"}
        )
        return response.status_code, me.json()["role"]


def counts(data_dir: Path) -> tuple[int, int]:
    async def work(ctx: AppContext) -> tuple[int, int]:
        async with ctx.db.read() as session:
            users = await session.scalar(select(func.count(User.id)))
            topics = await session.scalar(select(func.count(Topic.id)))
        return users or 0, topics or 0

    return with_context(data_dir, work, secret_key=SECRET)


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    result = chatforge(tmp_path, "db", "upgrade")

    assert result.returncode == 0, result.stderr
    assert "Database schema is up to date." in result.stdout
    assert (tmp_path / "chatforge.db").is_file()
    assert counts(tmp_path) == (0, 0)


def test_user_create_makes_an_admin_who_can_log_in(tmp_path: Path) -> None:
    result = chatforge(
        tmp_path, "user", "create", "--username", "Root", "--role", "admin", "--password", PASSWORD
    )

    assert result.returncode == 0, result.stderr
    assert "Created root (admin)." in result.stdout
    assert token_response(tmp_path, "root", PASSWORD) == (200, "admin")
    assert token_response(tmp_path, "root", "not the password") == (401, None)


def test_user_create_refuses_a_taken_username_clearly(tmp_path: Path) -> None:
    chatforge(tmp_path, "user", "create", "--username", "root", "--password", PASSWORD)

    result = chatforge(
        tmp_path, "user", "create", "--username", "ROOT", "--role", "admin", "--password", PASSWORD
    )

    assert result.returncode != 0
    assert "That username is taken." in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert counts(tmp_path) == (1, 0)
    assert token_response(tmp_path, "root", PASSWORD) == (200, "user")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--username", "x", "--password", PASSWORD), "Username must be 3-32 characters"),
        (("--username", "shorty", "--password", "short"), "Password must be 8-128"),
    ],
)
def test_user_create_explains_bad_input(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = chatforge(tmp_path, "user", "create", *args)

    assert result.returncode == 1
    assert message in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_user_create_refuses_an_unknown_role(tmp_path: Path) -> None:
    result = chatforge(
        tmp_path, "user", "create", "--username", "root", "--role", "god", "--password", PASSWORD
    )

    assert result.returncode == 2
    assert "god" in result.stderr


def demo_rows(output: str) -> dict[str, tuple[str, str]]:
    """username → (role, password cell) from the table ``chatforge demo`` prints."""
    rows: dict[str, tuple[str, str]] = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in re.split(r"[│|]", line)[1:-1]]
        if len(cells) == 3 and cells[0] in {name for name, _ in DEMO_ACCOUNTS}:
            rows[cells[0]] = (cells[1], cells[2])
    return rows


def test_demo_prints_new_passwords_once_and_creates_nothing_twice(tmp_path: Path) -> None:
    first = chatforge(tmp_path, "demo")

    assert first.returncode == 0, first.stderr
    rows = demo_rows(first.stdout)
    assert {name: role for name, (role, _) in rows.items()} == {
        name: role.value for name, role in DEMO_ACCOUNTS
    }
    passwords = {name: password for name, (_, password) in rows.items()}
    assert all(len(password) >= 8 for password in passwords.values())
    assert len(set(passwords.values())) == 4
    assert counts(tmp_path) == (4, len(DEMO_TOPICS))
    for name, role in DEMO_ACCOUNTS:
        assert token_response(tmp_path, name, passwords[name]) == (200, role.value)

    second = chatforge(tmp_path, "demo")

    assert second.returncode == 0, second.stderr
    assert {cell for _, cell in demo_rows(second.stdout).values()} == {"(exists; unchanged)"}
    for password in passwords.values():
        assert password not in second.stdout
    assert counts(tmp_path) == (4, len(DEMO_TOPICS))
    assert token_response(tmp_path, "admin", passwords["admin"]) == (200, "admin")


@pytest.mark.parametrize("command", [("serve", "--port", "1"), ("demo",)])
def test_a_short_secret_stops_the_command_with_a_readable_message(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    result = chatforge(tmp_path, *command, secret="too-short")

    assert result.returncode == 2
    output = " ".join((result.stdout + result.stderr).split())
    assert "Configuration error: CHATFORGE_SECRET_KEY is 9 bytes long; use at least 32" in output
    assert "Traceback" not in output
    assert not (tmp_path / "chatforge.db").exists()
