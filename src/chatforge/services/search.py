"""Full-text search over message text (N1): SQLite FTS5 or PostgreSQL full-text.

What people type is never handed to the search engine as query syntax. It is cut into words, and
each word becomes a quoted FTS5 string (or a ``plainto_tsquery`` on PostgreSQL), so quotes, ``*``,
``NEAR(``, ``AND`` or unbalanced parentheses are just text. A trailing ``*`` on a word asks for a
prefix match on SQLite. Whatever the engine still refuses is ``BadQuery`` (400), never a 500.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, column, select, table, text
from sqlalchemy.ext.asyncio import AsyncSession

from chatforge.errors import BadQuery
from chatforge.store.models import Message

QUERY_MAX = 500
TERMS_MAX = 32
_WORD = re.compile(r"(\w+)(\*?)")

message_search = table("message_search", column("rowid"), column("text"))

# Must stay identical to what the triggers of migration 0006 index for a message.
_SQLITE_INDEX_CONVERSATIONS = text(
    "INSERT INTO message_search(rowid, text) "
    "SELECT id, body || ' ' || coalesce(corrected_body, '') FROM messages "
    "WHERE conversation_id IN (SELECT value FROM json_each(:ids)) AND deleted_at IS NULL"
)

# Must stay identical to the index expression in migration 0004_annotation.
_PG_DOCUMENT = (
    "to_tsvector('simple'::regconfig, "
    "messages.body || ' ' || coalesce(messages.corrected_body, ''))"
)


@dataclass(frozen=True, slots=True)
class SearchTerm:
    word: str
    prefix: bool = False


def search_terms(query: str) -> list[SearchTerm]:
    """The words of ``query``; ``BadQuery`` if it is too long or has no word at all."""
    if len(query) > QUERY_MAX:
        raise BadQuery(
            f"Search for at most {QUERY_MAX} characters ({len(query)} given).",
            code="search_too_long",
        )
    terms = [SearchTerm(word.lower(), bool(star)) for word, star in _WORD.findall(query)]
    if not terms:
        raise BadQuery("Search for at least one word.", code="search_without_words")
    if len(terms) > TERMS_MAX:
        raise BadQuery(f"Search for at most {TERMS_MAX} words.", code="search_too_many_words")
    return terms


def fts5_expression(terms: list[SearchTerm]) -> str:
    """An FTS5 MATCH expression finding messages with every term (quoted, so never syntax)."""
    quoted = []
    for term in terms:
        literal = '"' + term.word.replace('"', '""') + '"'
        quoted.append(literal + "*" if term.prefix else literal)
    return " ".join(quoted)


def matching_messages(terms: list[SearchTerm], *, postgres: bool) -> Select[int]:
    """``SELECT messages.conversation_id`` of the live messages that contain every term.

    The caller adds its own visibility conditions on ``Message``.
    """
    if postgres:
        words = " ".join(term.word for term in terms)
        condition = text(
            f"{_PG_DOCUMENT} @@ plainto_tsquery('simple'::regconfig, :search_words)"
        ).bindparams(search_words=words)
        return select(Message.conversation_id).where(condition, Message.deleted_at.is_(None))
    return (
        select(Message.conversation_id)
        .join(message_search, message_search.c.rowid == Message.id)
        .where(
            text("message_search MATCH :search_fts").bindparams(search_fts=fts5_expression(terms))
        )
    )


async def index_conversations(
    session: AsyncSession, conversation_ids: Sequence[int], *, postgres: bool
) -> None:
    """Index the messages of bot chats that end in the caller's transaction (SQLite).

    The index leaves out open bot chats (migration 0006): nobody searches them, and their
    messages arrive fastest. Call it in the transaction that sets their status to *done*, so
    the triggers that keep the index in step afterwards find every message indexed. PostgreSQL
    indexes every row anyway.
    """
    if conversation_ids and not postgres:
        await session.execute(
            _SQLITE_INDEX_CONVERSATIONS, {"ids": json.dumps(list(conversation_ids))}
        )
