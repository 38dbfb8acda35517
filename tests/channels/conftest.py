from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatforge.settings import Settings, load_settings
from chatforge.store import migrate
from tests.platforms import FakePlatform, fake_platform, platform_env
from tests.servers import SECRET


@pytest.fixture
def platform() -> Iterator[FakePlatform]:
    with fake_platform() as fake:
        yield fake


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated database, copied for each test: migrating each time is most of a test."""
    folder = tmp_path_factory.mktemp("template")
    migrate.upgrade(f"sqlite+aiosqlite:///{folder / 'chatforge.db'}")
    return folder


@pytest.fixture
def settings(tmp_path: Path, platform: FakePlatform, migrated_template: Path) -> Settings:
    data = tmp_path / "data"
    shutil.copytree(migrated_template, data)
    config = load_settings(
        data_dir=data,
        secret_key=SECRET,
        public_url="https://chat.example.org",
        **platform_env(platform.url),
    )
    config.check()
    return config
