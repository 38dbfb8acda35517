"""the SQLite search index keeps no copy of message text (contentless FTS5)

The index of migration 0004 stored every message's text a second time, in its own content
table, and each new message paid for that write. Searches only ask the index for matching
message ids, so a contentless index (``content=''``) serves them. Such an index cannot look up
what it indexed for a row, so the triggers take a row out with FTS5's ``'delete'`` command and
the row's old text, built with the same expression that indexed it. PostgreSQL is unchanged.

Revision ID: 0005_contentless_search
Revises: 0004_annotation
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0005_contentless_search"
down_revision = "0004_annotation"
branch_labels = None
depends_on = None

# What a message is found by: its text and its correction. Deleted messages are not indexed.
_TEXT = "{row}.body || ' ' || coalesce({row}.corrected_body, '')"
_INDEX_NEW = (
    f"INSERT INTO message_search(rowid, text) SELECT new.id, {_TEXT.format(row='new')} "
    "WHERE new.deleted_at IS NULL;"
)
_UNINDEX_OLD = (
    "INSERT INTO message_search(message_search, rowid, text) "
    f"SELECT 'delete', old.id, {_TEXT.format(row='old')} WHERE old.deleted_at IS NULL;"
)
_TRIGGERS = ("insert", "update", "delete")

_CONTENTLESS = [
    "CREATE VIRTUAL TABLE message_search USING fts5(text, tokenize = 'unicode61', content = '')",
    f"CREATE TRIGGER message_search_insert AFTER INSERT ON messages BEGIN {_INDEX_NEW} END",
    "CREATE TRIGGER message_search_update "
    f"AFTER UPDATE OF body, corrected_body, deleted_at ON messages BEGIN {_UNINDEX_OLD} "
    f"{_INDEX_NEW} END",
    f"CREATE TRIGGER message_search_delete AFTER DELETE ON messages BEGIN {_UNINDEX_OLD} END",
]

# Migration 0004's index, for the way back.
_WITH_CONTENT = [
    "CREATE VIRTUAL TABLE message_search USING fts5(text, tokenize = 'unicode61')",
    f"CREATE TRIGGER message_search_insert AFTER INSERT ON messages BEGIN {_INDEX_NEW} END",
    "CREATE TRIGGER message_search_update "
    "AFTER UPDATE OF body, corrected_body, deleted_at ON messages BEGIN "
    f"DELETE FROM message_search WHERE rowid = old.id; {_INDEX_NEW} END",
    "CREATE TRIGGER message_search_delete AFTER DELETE ON messages BEGIN "
    "DELETE FROM message_search WHERE rowid = old.id; END",
]

_FILL = (
    f"INSERT INTO message_search(rowid, text) SELECT id, {_TEXT.format(row='messages')} "
    "FROM messages WHERE deleted_at IS NULL"
)


def _rebuild(statements: list[str]) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for trigger in _TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS message_search_{trigger}")
    op.execute("DROP TABLE IF EXISTS message_search")
    for statement in statements:
        op.execute(statement)
    op.execute(_FILL)


def upgrade() -> None:
    _rebuild(_CONTENTLESS)


def downgrade() -> None:
    _rebuild(_WITH_CONTENT)
