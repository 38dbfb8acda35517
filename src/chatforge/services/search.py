"""Full-text search over message text (N1): SQLite FTS5 or PostgreSQL full-text.

What people type is never handed to the search engine as query syntax. It is cut into words, and
each word becomes a quoted FTS5 string (or a ``plainto_tsquery`` on PostgreSQL), so quotes, ``*``,
``NEAR(``, ``AND`` or unbalanced parentheses are just text. A trailing ``*`` on a word asks for a
prefix match on SQLite. Whatever the engine still refuses is ``BadQuery`` (400), never a 500.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Select, column, select, table, text

from chatforge.errors import BadQuery
from chatforge.store.models import Message

QUERY_MAX = 500
TERMS_MAX = 32
_WORD = re.compile(r"(\w+)(\*?)")

message_search = table("message_search", column("rowid"), column("text"))

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
