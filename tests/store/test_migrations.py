"""The Alembic migrations: they go up, down and up again, and build exactly the models' schema."""

from __future__ import annotations

import asyncio
import sqlite3
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


def _found(path: Path, word: str) -> list[int]:
    with sqlite3.connect(path) as db:
        query = "SELECT rowid FROM message_search WHERE message_search MATCH ? ORDER BY rowid"
        return [row[0] for row in db.execute(query, (word,))]


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_the_search_index_keeps_no_copy_of_the_text_and_stays_right(tmp_path: Path) -> None:
    path = tmp_path / "chatforge.db"
    url = f"sqlite+aiosqlite:///{path}"
    migrate.upgrade(url, "0004_annotation")
    # Messages from before the change (plain sqlite3: foreign keys are not enforced here).
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO messages (id, conversation_id, seq, sender_id, body, corrected_body,"
            " deleted_at, created_at, excluded) VALUES (?, 1, ?, 1, ?, ?, ?, '2026-01-01', 0)",
            [
                (1, 1, "rebase onto main", None, None),
                (2, 2, "plain text", "better wording", None),
                (3, 3, "deleted secret", None, "2026-01-02"),
            ],
        )

    migrate.upgrade(url)
    assert "message_search_content" not in _tables(path)
    assert (_found(path, "rebase"), _found(path, "wording"), _found(path, "secret")) == (
        [1],
        [2],
        [],
    )

    # The triggers take out exactly what they put in.
    with sqlite3.connect(path) as db:
        db.execute("UPDATE messages SET corrected_body = 'other words' WHERE id = 2")
        db.execute("UPDATE messages SET deleted_at = NULL WHERE id = 3")
        db.execute("DELETE FROM messages WHERE id = 1")
        db.execute(
            "INSERT INTO messages (id, conversation_id, seq, sender_id, body, created_at,"
            " excluded) VALUES (4, 1, 4, 1, 'rebase again', '2026-01-03', 0)"
        )
        db.execute("INSERT INTO message_search(message_search) VALUES ('integrity-check')")
    assert _found(path, "wording") == []
    assert _found(path, "other") == [2]
    assert _found(path, "plain") == [2]
    assert _found(path, "secret") == [3]
    assert _found(path, "rebase") == [4]

    migrate.downgrade(url, "0004_annotation")
    assert "message_search_content" in _tables(path)
    assert (_found(path, "rebase"), _found(path, "other"), _found(path, "secret")) == (
        [4],
        [2],
        [3],
    )


def test_open_bot_chats_leave_the_search_index_until_they_end(tmp_path: Path) -> None:
    path = tmp_path / "chatforge.db"
    url = f"sqlite+aiosqlite:///{path}"
    migrate.upgrade(url, "0005_contentless_search")
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO conversations (id, kind, status, title, owner_id, channel, last_seq,"
            " created_at) VALUES (?, ?, ?, '', 1, 'whatsapp', 1, '2026-01-01')",
            [(1, "bot", "active"), (2, "bot", "done"), (3, "support", "active")],
        )
        db.executemany(
            "INSERT INTO messages (id, conversation_id, seq, sender_id, body, created_at,"
            " excluded) VALUES (?, ?, 1, 1, 'python easy', '2026-01-01', 0)",
            [(1, 1), (2, 2), (3, 3)],
        )
    assert _found(path, "python") == [1, 2, 3]

    migrate.upgrade(url, "0006_bot_chats_indexed_at_end")
    assert _found(path, "python") == [2, 3]
    with sqlite3.connect(path) as db:
        # The open chat's messages come and change unindexed; the others as before.
        db.execute(
            "INSERT INTO messages (id, conversation_id, seq, sender_id, body, created_at,"
            " excluded) VALUES (4, 1, 2, 1, 'sql hard', '2026-01-02', 0)"
        )
        db.execute("UPDATE messages SET body = 'erased' WHERE id IN (1, 2)")
        db.execute("DELETE FROM messages WHERE id = 3")
        db.execute("INSERT INTO message_search(message_search) VALUES ('integrity-check')")
    assert (_found(path, "python"), _found(path, "sql"), _found(path, "erased")) == ([], [], [2])

    migrate.downgrade(url, "0005_contentless_search")
    assert (_found(path, "sql"), _found(path, "erased")) == ([4], [1, 2])
    with sqlite3.connect(path) as db:
        db.execute("UPDATE messages SET body = 'gone' WHERE id = 4")
        db.execute("INSERT INTO message_search(message_search) VALUES ('integrity-check')")
    assert (_found(path, "sql"), _found(path, "gone")) == ([], [4])


def test_open_conversations_of_every_kind_leave_the_search_index_until_they_end(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chatforge.db"
    url = f"sqlite+aiosqlite:///{path}"
    migrate.upgrade(url, "0006_bot_chats_indexed_at_end")
    kinds = [
        (1, "support", "pending"),
        (2, "support", "active"),
        (3, "session", "active"),
        (4, "bot", "active"),
        (5, "support", "done"),
        (6, "bot", "done"),
        (7, "support", "annotated"),
    ]
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO conversations (id, kind, status, title, owner_id, channel, last_seq,"
            " created_at) VALUES (?, ?, ?, '', 1, 'web', 1, '2026-01-01')",
            kinds,
        )
        db.executemany(
            "INSERT INTO messages (id, conversation_id, seq, sender_id, body, created_at,"
            " excluded) VALUES (?, ?, 1, 1, 'rebase onto main', '2026-01-01', 0)",
            [(cid, cid) for cid, _, _ in kinds],
        )
    assert _found(path, "rebase") == [1, 2, 3, 5, 6, 7]

    migrate.upgrade(url)
    assert _found(path, "rebase") == [5, 6, 7]
    with sqlite3.connect(path) as db:
        # Open conversations' messages come, change and go unindexed; finished ones' as before.
        db.executemany(
            "INSERT INTO messages (id, conversation_id, seq, sender_id, body, created_at,"
            " excluded) VALUES (?, ?, 2, 1, 'merge conflict', '2026-01-02', 0)",
            [(10 + cid, cid) for cid, _, _ in kinds],
        )
        db.execute("UPDATE messages SET body = 'erased' WHERE id IN (2, 3, 5)")
        db.execute("UPDATE messages SET deleted_at = '2026-01-03' WHERE id IN (1, 6)")
        db.execute("DELETE FROM messages WHERE id IN (4, 7)")
        db.execute("INSERT INTO message_search(message_search) VALUES ('integrity-check')")
    assert _found(path, "merge") == [15, 16, 17]
    assert (_found(path, "erased"), _found(path, "rebase")) == ([5], [])

    # Ending a conversation indexes its messages, whatever code ends it; the message triggers
    # keep them in step from then on. Reopening one would take them out again.
    with sqlite3.connect(path) as db:
        db.execute("UPDATE conversations SET status = 'done' WHERE id IN (2, 3)")
        db.execute("UPDATE conversations SET status = 'annotated' WHERE id = 2")
        db.execute("UPDATE messages SET corrected_body = 'better wording' WHERE id = 12")
        db.execute("UPDATE conversations SET status = 'active' WHERE id = 3")
        db.execute("INSERT INTO message_search(message_search) VALUES ('integrity-check')")
    assert (_found(path, "erased"), _found(path, "wording")) == ([2, 5], [12])
    assert _found(path, "merge") == [12, 15, 16, 17]

    migrate.downgrade(url, "0006_bot_chats_indexed_at_end")
    # 0006 indexes every open conversation but an active bot chat.
    assert _found(path, "erased") == [2, 3, 5]
    assert _found(path, "merge") == [11, 12, 13, 15, 16, 17]
    with sqlite3.connect(path) as db:
        db.execute("UPDATE messages SET body = 'gone' WHERE id = 13")
        db.execute("INSERT INTO message_search(message_search) VALUES ('integrity-check')")
    assert (_found(path, "merge"), _found(path, "gone")) == ([11, 12, 15, 16, 17], [13])
