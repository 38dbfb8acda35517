"""the SQLite search index takes a bot chat's messages when the chat ends

Search serves the annotators, who only see finished conversations (N1). A bot chat stays open
while its user keeps talking, and every WhatsApp or Messenger message adds two rows to it, so
indexing them as they arrive was most of the index's work and none of its use. The triggers now
leave out the messages of open (``active``) bot conversations; ending one indexes its messages
in the same transaction (``services/search.py``, ``index_conversations``). Messages of open bot
chats that migration 0005 indexed are taken out here. PostgreSQL is unchanged: its expression
index cannot leave rows out by another table's state, and costs far less per row.

Revision ID: 0006_bot_chats_indexed_at_end
Revises: 0005_contentless_search
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0006_bot_chats_indexed_at_end"
down_revision = "0005_contentless_search"
branch_labels = None
depends_on = None

# Migration 0005's statements: what is indexed for a row, and how it is taken out.
_TEXT = "{row}.body || ' ' || coalesce({row}.corrected_body, '')"
_INDEX_NEW = (
    f"INSERT INTO message_search(rowid, text) SELECT new.id, {_TEXT.format(row='new')} "
    "WHERE new.deleted_at IS NULL;"
)
_UNINDEX_OLD = (
    "INSERT INTO message_search(message_search, rowid, text) "
    f"SELECT 'delete', old.id, {_TEXT.format(row='old')} WHERE old.deleted_at IS NULL;"
)
_OPEN_BOT_CHAT = (
    "SELECT 1 FROM conversations WHERE conversations.id = {row}.conversation_id "
    "AND conversations.kind = 'bot' AND conversations.status = 'active'"
)


def _triggers(*, skip_open_bot_chats: bool) -> list[str]:
    def when(row: str) -> str:
        # A message's conversation never changes, so its old and new row give one answer.
        # Conversations are deleted only once finished, so their messages are indexed then.
        return f"WHEN NOT EXISTS ({_OPEN_BOT_CHAT.format(row=row)})" if skip_open_bot_chats else ""

    return [
        f"CREATE TRIGGER message_search_insert AFTER INSERT ON messages {when('new')} "
        f"BEGIN {_INDEX_NEW} END",
        "CREATE TRIGGER message_search_update "
        f"AFTER UPDATE OF body, corrected_body, deleted_at ON messages {when('new')} "
        f"BEGIN {_UNINDEX_OLD} {_INDEX_NEW} END",
        f"CREATE TRIGGER message_search_delete AFTER DELETE ON messages {when('old')} "
        f"BEGIN {_UNINDEX_OLD} END",
    ]


def _open_bot_chat_messages(command: str) -> str:
    """Index (``command`` ``''``) or take out (``'delete'``) the messages of open bot chats."""
    column = "message_search, " if command else ""
    value = f"'{command}', " if command else ""
    return (
        f"INSERT INTO message_search({column}rowid, text) "
        f"SELECT {value}messages.id, {_TEXT.format(row='messages')} FROM messages "
        "JOIN conversations ON conversations.id = messages.conversation_id "
        "WHERE conversations.kind = 'bot' AND conversations.status = 'active' "
        "AND messages.deleted_at IS NULL"
    )


def _replace_triggers(statements: list[str]) -> None:
    for trigger in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS message_search_{trigger}")
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(_open_bot_chat_messages("delete"))
    _replace_triggers(_triggers(skip_open_bot_chats=True))


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _replace_triggers(_triggers(skip_open_bot_chats=False))
    op.execute(_open_bot_chat_messages(""))
