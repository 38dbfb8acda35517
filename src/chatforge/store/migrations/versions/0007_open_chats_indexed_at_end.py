"""the SQLite search index takes a conversation's messages when it is finished, whatever its kind

Migration 0006 left open bot chats out of the index. Search serves the annotators, who only see
finished (*done* or *annotated*) conversations, so the same holds for every kind: an open support
chat or a live session's room is never searched either. Indexing their messages as they arrived
cost each message's write transaction about 100 µs on SQLite, and every few transactions FTS5
merged its segments inside one of them, for milliseconds: the tail of a message's latency.

The triggers on ``messages`` now leave out the messages of pending and active conversations, and
two triggers on ``conversations`` index a conversation's messages when its status turns to a
finished one (and take them out again if it ever reopened), in the transaction that ends it,
whichever code ends it (the service code that indexed bot chats at their end, which 0006 relied
on, is gone). Messages of open conversations that 0006 indexed are taken out here.
PostgreSQL is unchanged: its expression index covers every row at a far lower cost per row.

Revision ID: 0007_open_chats_indexed_at_end
Revises: 0006_bot_chats_indexed_at_end
Create Date: 2026-11-24
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0007_open_chats_indexed_at_end"
down_revision = "0006_bot_chats_indexed_at_end"
branch_labels = None
depends_on = None


def _load_0006() -> ModuleType:
    # Alembic loads each migration from its file, not as a module of a package.
    path = Path(__file__).with_name("0006_bot_chats_indexed_at_end.py")
    spec = importlib.util.spec_from_file_location("chatforge_migration_0006", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# What 0006 indexes for a message, and its triggers, which downgrade puts back. Its statements
# are fixed for good, as every applied migration's are.
_0006 = _load_0006()

_UNFINISHED = (
    "SELECT 1 FROM conversations WHERE conversations.id = {row}.conversation_id "
    "AND conversations.status IN ('pending', 'active')"
)
# Open conversations whose messages 0006 indexed: every open one but an active bot chat.
_INDEXED_BY_0006 = (
    "conversations.status IN ('pending', 'active') "
    "AND NOT (conversations.kind = 'bot' AND conversations.status = 'active')"
)


def _triggers() -> list[str]:
    # A message's conversation never changes, and the status triggers move all of its
    # messages in or out when its status does, so a message's old and new row give one
    # answer. Only finished conversations are deleted, so a deleted one's messages were
    # indexed.
    when_new = f"WHEN NOT EXISTS ({_UNFINISHED.format(row='new')})"
    when_old = f"WHEN NOT EXISTS ({_UNFINISHED.format(row='old')})"
    return [
        f"CREATE TRIGGER message_search_insert AFTER INSERT ON messages {when_new} "
        f"BEGIN {_0006._INDEX_NEW} END",
        "CREATE TRIGGER message_search_update "
        f"AFTER UPDATE OF body, corrected_body, deleted_at ON messages {when_new} "
        f"BEGIN {_0006._UNINDEX_OLD} {_0006._INDEX_NEW} END",
        f"CREATE TRIGGER message_search_delete AFTER DELETE ON messages {when_old} "
        f"BEGIN {_0006._UNINDEX_OLD} END",
    ]


def _status_triggers() -> list[str]:
    text = _0006._TEXT.format(row="messages")
    of_it = "FROM messages WHERE messages.conversation_id = new.id AND messages.deleted_at IS NULL"
    opened, finished = "IN ('pending', 'active')", "NOT IN ('pending', 'active')"
    return [
        "CREATE TRIGGER conversation_search_finish AFTER UPDATE OF status ON conversations "
        f"WHEN old.status {opened} AND new.status {finished} BEGIN "
        f"INSERT INTO message_search(rowid, text) SELECT messages.id, {text} {of_it}; END",
        "CREATE TRIGGER conversation_search_reopen AFTER UPDATE OF status ON conversations "
        f"WHEN old.status {finished} AND new.status {opened} BEGIN "
        "INSERT INTO message_search(message_search, rowid, text) "
        f"SELECT 'delete', messages.id, {text} {of_it}; END",
    ]


def _open_messages(command: str) -> str:
    """Index (``command`` ``''``) or take out (``'delete'``) the messages of the open
    conversations 0006 keeps in the index."""
    column = "message_search, " if command else ""
    value = f"'{command}', " if command else ""
    text = _0006._TEXT.format(row="messages")
    return (
        f"INSERT INTO message_search({column}rowid, text) "
        f"SELECT {value}messages.id, {text} FROM messages "
        "JOIN conversations ON conversations.id = messages.conversation_id "
        f"WHERE {_INDEXED_BY_0006} AND messages.deleted_at IS NULL"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(_open_messages("delete"))
    _0006._replace_triggers(_triggers())
    for statement in _status_triggers():
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("DROP TRIGGER IF EXISTS conversation_search_finish")
    op.execute("DROP TRIGGER IF EXISTS conversation_search_reopen")
    _0006._replace_triggers(_0006._triggers(skip_open_bot_chats=True))
    op.execute(_open_messages(""))
