"""Tables of the annotation workbench (N1-N6): the admin-managed labels, one annotation per
conversation and annotator, its labels, and good / bad ratings of single assistant turns.

The full-text index of message text (``message_search``) is not a model: on SQLite it is an FTS5
virtual table kept in step by triggers, on PostgreSQL an expression index (see the migration
``0004_annotation`` and ``services/search.py``).
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, Enum, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from chatforge.store.models import Base, Rating
from chatforge.store.types import UTCDateTime, utcnow


class TurnVerdict(enum.StrEnum):
    good = "good"
    bad = "bad"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, native_enum=False, length=16, validate_strings=True)


class AnnotationLabel(Base):
    """A label annotators may put on a conversation; admins manage the list."""

    __tablename__ = "annotation_labels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(200), default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Annotation(Base):
    """One annotator's judgement of one conversation; several annotators may judge each."""

    __tablename__ = "annotations"
    __table_args__ = (UniqueConstraint("conversation_id", "annotator_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    rating: Mapped[Rating] = mapped_column(_enum(Rating, "rating"))
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AnnotationLabelLink(Base):
    """A label applied in one annotation."""

    __tablename__ = "annotation_label_links"

    annotation_id: Mapped[int] = mapped_column(
        ForeignKey("annotations.id", ondelete="CASCADE"), primary_key=True
    )
    label_id: Mapped[int] = mapped_column(
        ForeignKey("annotation_labels.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class TurnRating(Base):
    """One annotator's good / bad verdict on one assistant message (N5, N6)."""

    __tablename__ = "turn_ratings"
    __table_args__ = (UniqueConstraint("message_id", "annotator_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    # Denormalised so that an export reads a batch of conversations' verdicts in one query.
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    annotator_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    verdict: Mapped[TurnVerdict] = mapped_column(_enum(TurnVerdict, "turn_verdict"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# The full-text index lives outside the models: the SQLite FTS5 table with its shadow tables
# (``_content`` only before migration 0005 made the index contentless), and the PostgreSQL
# expression index. Schema comparisons (autogenerate, tests) skip them.
SEARCH_INDEX_TABLES = frozenset(
    {
        "message_search",
        "message_search_config",
        "message_search_content",
        "message_search_data",
        "message_search_docsize",
        "message_search_idx",
    }
)
SEARCH_INDEX = "ix_messages_search"


def in_models(name: str | None, type_: str, parent_names: object = None) -> bool:
    """False for the search index's tables and index (an Alembic ``include_name`` hook)."""
    if type_ == "table":
        return name not in SEARCH_INDEX_TABLES
    return not (type_ == "index" and name == SEARCH_INDEX)
