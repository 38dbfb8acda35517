"""The Alembic migrations: they go up, down and up again, and build exactly the models' schema."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from chatforge.store import (  # noqa: F401  (these modules register their tables)
    annotation_models,
    bot_models,
    migrate,
    session_models,
)
from chatforge.store.annotation_models import SEARCH_INDEX_TABLES, in_models
from chatforge.store.models import Base


def schema_state(url: str) -> tuple[set[str], str | None, list[Any]]:
    """(tables, current revision, differences between the database and the models)."""

    def read(connection: Connection) -> tuple[set[str], str | None, list[Any]]:
        # The full-text index is built by the migration outside the models.
        context = MigrationContext.configure(connection, opts={"include_name": in_models})
        tables = set(inspect(connection).get_table_names()) - SEARCH_INDEX_TABLES
        return tables, context.get_current_revision(), compare_metadata(context, Base.metadata)

    async def run() -> tuple[set[str], str | None, list[Any]]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(read)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def head() -> str:
    revision = ScriptDirectory.from_config(migrate.alembic_config("sqlite://")).get_current_head()
    assert revision is not None
    return revision


MODEL_TABLES = set(Base.metadata.tables)


def check_round_trip(url: str) -> None:
    migrate.upgrade(url)
    tables, revision, diff = schema_state(url)
    assert tables == MODEL_TABLES | {"alembic_version"}
    assert revision == head()
    assert diff == []

    migrate.downgrade(url, "base")
    tables, revision, _ = schema_state(url)
    assert tables == {"alembic_version"}
    assert revision is None

    migrate.upgrade(url)
    tables, revision, diff = schema_state(url)
    assert tables == MODEL_TABLES | {"alembic_version"}
    assert revision == head()
    assert diff == []


def test_sqlite_migrates_up_down_and_up_to_the_models_schema(tmp_path: Path) -> None:
    check_round_trip(f"sqlite+aiosqlite:///{tmp_path / 'chatforge.db'}")


def test_upgrading_an_up_to_date_database_changes_nothing(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'chatforge.db'}"
    migrate.upgrade(url)

    migrate.upgrade(url)

    assert schema_state(url)[1:] == (head(), [])


def test_the_models_declare_every_table_the_app_uses() -> None:
    assert {
        "users",
        "channel_identities",
        "topics",
        "conversations",
        "participants",
        "events",
        "messages",
        "audit_log",
        "feature_texts",
        # bots and channels
        "bot_states",
        "bot_interactions",
        "inbound_messages",
        # live sessions
        "session_rooms",
        "reactions",
        "raised_hands",
        "mutes",
        "profanity_strikes",
        # annotation
        "annotation_labels",
        "annotations",
        "annotation_label_links",
        "turn_ratings",
    } == MODEL_TABLES
