"""Settings: the signing secret, the default database and refusing unusable configuration."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from chatforge.app import create_app
from chatforge.context import build_context
from chatforge.settings import MIN_SECRET_BYTES, SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("CHATFORGE_"):
            monkeypatch.delenv(key)
    yield


@pytest.fixture
def owner_only_umask() -> Iterator[None]:
    # A permissive umask: the secret file must be private regardless.
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_generated_secret_is_stored_privately_once_and_reused(
    tmp_path: Path, owner_only_umask: None
) -> None:
    data_dir = tmp_path / "data"

    first = load_settings(data_dir=data_dir).signing_key
    path = data_dir / "secret_key"
    mode = stat.S_IMODE(path.stat().st_mode)
    second = load_settings(data_dir=data_dir).signing_key

    assert len(first) >= MIN_SECRET_BYTES
    assert mode == 0o600
    assert path.read_text().strip().encode() == first
    assert second == first
    assert list(data_dir.iterdir()) == [path]


def test_secrets_differ_between_installations(tmp_path: Path) -> None:
    one = load_settings(data_dir=tmp_path / "one").signing_key
    two = load_settings(data_dir=tmp_path / "two").signing_key

    assert one != two


def test_secret_from_the_environment_is_used_and_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "s" * MIN_SECRET_BYTES
    monkeypatch.setenv("CHATFORGE_SECRET_KEY", secret)
    monkeypatch.setenv("CHATFORGE_DATA_DIR", str(tmp_path / "data"))

    settings = load_settings()

    assert settings.signing_key == secret.encode()
    assert not (tmp_path / "data" / "secret_key").exists()


@pytest.mark.parametrize("secret", ["short", "x" * (MIN_SECRET_BYTES - 1), "é" * 15])
def test_short_secret_is_refused_with_a_readable_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    monkeypatch.setenv("CHATFORGE_SECRET_KEY", secret)
    settings = load_settings(data_dir=tmp_path)

    with pytest.raises(
        SettingsError, match=rf"CHATFORGE_SECRET_KEY .* at least {MIN_SECRET_BYTES}"
    ):
        settings.check()
    with pytest.raises(SettingsError):
        create_app(settings)
    with pytest.raises(SettingsError):
        build_context(settings)


def test_a_tampered_short_stored_secret_is_refused(tmp_path: Path) -> None:
    tmp_path.joinpath("secret_key").write_text("tiny\n")

    with pytest.raises(SettingsError):
        load_settings(data_dir=tmp_path).check()


def test_default_database_is_a_sqlite_file_in_the_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    settings = load_settings(secret_key="k" * MIN_SECRET_BYTES)
    settings.check()

    assert settings.data_dir == Path("data")
    assert settings.is_sqlite
    assert (
        settings.resolved_database_url
        == f"sqlite+aiosqlite:///{tmp_path / 'data' / 'chatforge.db'}"
    )
    assert (tmp_path / "data").is_dir()


def test_database_url_from_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "postgresql+asyncpg://chatforge@db.internal/chatforge"
    monkeypatch.setenv("CHATFORGE_DATABASE_URL", url)

    settings = load_settings(data_dir=tmp_path)

    assert settings.resolved_database_url == url
    assert not settings.is_sqlite


@pytest.mark.parametrize("url", ["ftp://chat.example.org", "chat.example.org", "http://"])
def test_public_url_must_be_http(tmp_path: Path, url: str) -> None:
    with pytest.raises(ValidationError, match="CHATFORGE_PUBLIC_URL must be an http"):
        load_settings(data_dir=tmp_path, public_url=url)


def test_public_url_gives_the_origin_and_cookie_security(tmp_path: Path) -> None:
    plain = load_settings(data_dir=tmp_path, public_url="http://127.0.0.1:8000/")
    tls = load_settings(data_dir=tmp_path, public_url="https://chat.example.org/base/")

    assert plain.public_url == "http://127.0.0.1:8000"
    assert plain.public_origin == "http://127.0.0.1:8000"
    assert not plain.secure_cookies
    assert tls.public_origin == "https://chat.example.org"
    assert tls.secure_cookies


@pytest.mark.parametrize("seconds", ["-1", "61", "soon"])
def test_checkpoint_interval_out_of_range_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seconds: str
) -> None:
    monkeypatch.setenv("CHATFORGE_SQLITE_CHECKPOINT_SECONDS", seconds)
    with pytest.raises(ValidationError, match="sqlite_checkpoint_seconds"):
        load_settings(data_dir=tmp_path)


async def test_the_checkpoint_interval_reaches_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATFORGE_SQLITE_CHECKPOINT_SECONDS", "2.5")
    ctx = build_context(load_settings(data_dir=tmp_path))
    try:
        assert ctx.db.checkpointer is not None
        assert ctx.db.checkpointer.interval == 2.5
    finally:
        await ctx.db.dispose()
